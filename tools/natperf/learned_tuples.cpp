// The Responder's learned translations; see learned_tuples.h.
#include "learned_tuples.h"

#include <algorithm>

namespace natperf {

LearnedTuples::LearnedTuples(uint64_t capacity) : entries_(capacity) {}

void LearnedTuples::clear() {
    std::fill(entries_.begin(), entries_.end(), LearnedTuple{});
    count_ = 0;
    rejected_ = 0;
    mac_count_ = 0;
}

bool LearnedTuples::learn(uint64_t index, uint32_t public_ip, uint16_t public_port,
                          const std::array<uint8_t, 6>& mac) {
    if (index >= entries_.size()) {
        ++rejected_;
        return false;
    }
    std::size_t slot = 0;
    while (slot < mac_count_ && macs_[slot] != mac) ++slot;
    if (slot == mac_count_) {
        if (mac_count_ == kMaxMacs) {
            ++rejected_;
            return false;
        }
        macs_[mac_count_++] = mac;
    }
    LearnedTuple& e = entries_[index];
    const bool fresh = !e.valid;
    e = LearnedTuple{public_ip, public_port, static_cast<uint8_t>(slot), 1};
    if (fresh) ++count_;
    return fresh;
}

uint64_t LearnedTuples::distinct_public_ips() const {
    std::vector<uint32_t> ips;
    for (const LearnedTuple& e : entries_)
        if (e.valid) ips.push_back(e.public_ip);
    std::sort(ips.begin(), ips.end());
    return static_cast<uint64_t>(std::unique(ips.begin(), ips.end()) - ips.begin());
}

}  // namespace natperf
