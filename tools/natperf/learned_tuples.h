// The Responder's view of the DUT's translations: for each tuple index, the translated source
// (public address and port) its phase-1 frame arrived with and the MAC it came from. The
// Responder answers over these (destination = public address:port, source = its own address
// and the tuple's destination port, to that MAC).
//
// One 8-byte entry per tuple, preallocated for the largest tuple count of the run; MACs are
// few (one per gateway), so entries hold a small index into a MAC list. Written and read by
// the lcore that polls the Responder port only.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace natperf {

struct LearnedTuple {
    uint32_t public_ip = 0;
    uint16_t public_port = 0;
    uint8_t mac_slot = 0;
    uint8_t valid = 0;
};

class LearnedTuples {
public:
    static constexpr std::size_t kMaxMacs = 16;

    explicit LearnedTuples(uint64_t capacity);

    // Forgets everything (before a new phase 1).
    void clear();

    // Records tuple `index`; true when it is new. Out of range, or a 17th distinct MAC:
    // ignored (false; rejected() counts them).
    bool learn(uint64_t index, uint32_t public_ip, uint16_t public_port, const std::array<uint8_t, 6>& mac);

    uint64_t capacity() const { return entries_.size(); }
    uint64_t count() const { return count_; }
    uint64_t rejected() const { return rejected_; }
    bool has(uint64_t index) const { return index < entries_.size() && entries_[index].valid; }
    const LearnedTuple& at(uint64_t index) const { return entries_[index]; }
    const std::array<uint8_t, 6>& mac(uint8_t slot) const { return macs_[slot]; }
    // Distinct translated public addresses (for the report).
    uint64_t distinct_public_ips() const;

private:
    std::vector<LearnedTuple> entries_;
    std::array<std::array<uint8_t, 6>, kMaxMacs> macs_{};
    std::size_t mac_count_ = 0;
    uint64_t count_ = 0;
    uint64_t rejected_ = 0;
};

}  // namespace natperf
