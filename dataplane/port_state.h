// The public ports' state of every pool address, built on the control thread (invariant I6).
//
// A worker must never stop forwarding to build state for a configuration change: a /20 pool
// added live used to cost a worker seconds of allocation, and a /16 a std::bad_alloc on the
// worker thread. So everything a snapshot needs for its addresses is built here, by the
// control thread, before the snapshot is published; a worker adopts it with one pointer swap
// (PortAllocator::adopt) and never allocates for a change.
//
// Per (address, worker, protocol space) the state is one bit per port of the worker's share of
// the WHOLE port range 0-65535 ("a session owns this port"), whatever the pool's range: a range
// change then never resizes anything, it only moves the allocatable window (PortEntry::lo/hi).
// One bit per port and space is 8 KiB per address and space across all workers, 24 KiB per
// address: a /16 pool (65,536 addresses) needs 1.5 GiB. `dataplane.port_state_mb` bounds it;
// a configuration that needs more is refused at validation (config file and control socket).
//
// Ownership: a PortIndex (one per worker and snapshot) is immutable once built; the
// AddressPorts it points to are mutated by that worker only (its bits and counters), and are
// shared between successive snapshots, so sessions keep their ports across a change. They are
// freed with the last snapshot that lists their address, after the RCU grace period that
// retires it (LiveConfig): a worker never sees freed state.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace snatgw {

struct NatConfig;

enum class PortSpace : uint8_t { Tcp, Udp, Icmp, Count };
inline constexpr int kPortSpaceCount = static_cast<int>(PortSpace::Count);

inline uint16_t port_owner(uint16_t port, uint16_t workers) {
    return static_cast<uint16_t>(port % workers);
}

// The ports of [port_min, port_max] owned by `worker`: first, first + W, first + 2W, ...
struct Partition {
    uint16_t first = 0;
    uint16_t step = 1;
    uint32_t count = 0;

    static Partition of(uint16_t port_min, uint16_t port_max, uint16_t worker, uint16_t workers);
    uint16_t port_at(uint32_t index) const {
        return static_cast<uint16_t>(first + index * step);
    }
    uint32_t index_of(uint16_t port) const { return (port - first) / step; }
    bool contains(uint16_t port) const {
        return count != 0 && port >= first && (port - first) % step == 0 &&
               index_of(port) < count;
    }
};

// One address's ports on one worker. Written by that worker only; the control thread reads the
// counters for statistics (single aligned 32-bit loads).
struct AddressPorts {
    // Port p of the worker's share of 0-65535 is index (p - worker) / W of `part`.
    Partition part;
    uint32_t words = 0;                    // 64-bit words per space
    std::unique_ptr<uint64_t[]> owned;     // [space * words + i]: bit set = a session owns it
    uint32_t owned_count[kPortSpaceCount] = {};    // bits set, whole share
    uint32_t sharers[kPortSpaceCount] = {};        // sessions on a port someone else owns
    // The window `owned_in_window` counts over, in indexes of `part`: the worker re-counts it
    // when the snapshot's window (PortEntry) differs (a range change), O(words).
    uint32_t win_lo = 0, win_hi = 0;
    uint32_t owned_in_window[kPortSpaceCount] = {};

    AddressPorts(uint16_t worker, uint16_t workers);
    uint64_t* bits(PortSpace sp) { return owned.get() + static_cast<std::size_t>(sp) * words; }
    const uint64_t* bits(PortSpace sp) const {
        return owned.get() + static_cast<std::size_t>(sp) * words;
    }
    bool is_owned(PortSpace sp, uint32_t idx) const {
        return (bits(sp)[idx / 64] >> (idx % 64)) & 1;
    }
    // Sessions on this address in every space (owners and sharers): 0 once it has drained.
    uint32_t sessions() const;
    std::size_t memory_bytes() const { return sizeof(*this) + std::size_t{words} * 8 * kPortSpaceCount; }
};

// What a snapshot says about one address for one worker.
struct PortEntry {
    uint32_t addr = 0;          // network order, as the packet path sees it
    uint32_t lo = 0, hi = 0;    // allocatable indexes [lo, hi) of the state's partition
    bool draining = false;      // no new sessions; existing ones keep their ports
    AddressPorts* ports = nullptr;
};

// Address -> PortEntry for one worker: open addressing, linear probing, at most half full
// (the packet path looks an address up on every new session). Immutable once built.
class PortIndex {
public:
    const PortEntry* find(uint32_t addr_net) const {
        if (slots_.empty()) return nullptr;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t h = hash(addr_net) & mask;; h = (h + 1) & mask) {
            const uint32_t i = slots_[h];
            if (i == kEmpty) return nullptr;
            if (entries_[i].addr == addr_net) return &entries_[i];
        }
    }
    std::size_t size() const { return entries_.size(); }
    const std::vector<PortEntry>& entries() const { return entries_; }

private:
    friend class PortStateStore;
    static constexpr uint32_t kEmpty = 0xffffffffu;
    static uint32_t hash(uint32_t a) { return (a * 0x9E3779B1u) ^ (a >> 16); }
    void add(const PortEntry& e, std::shared_ptr<AddressPorts> state);
    void build_slots();

    std::vector<PortEntry> entries_;
    std::vector<uint32_t> slots_;
    std::vector<std::shared_ptr<AddressPorts>> keep_;  // keeps the states alive
};

// The control thread's registry of every address's state per worker. build() is
// all-or-nothing: on std::bad_alloc the registry is as before.
class PortStateStore {
public:
    explicit PortStateStore(uint16_t workers);

    // Bytes of port state one address needs, across all workers.
    static std::size_t bytes_per_address(uint16_t workers);
    // Bytes the snapshot's addresses (pools' and draining ones) need.
    static std::size_t bytes_for(const NatConfig& c);

    // Fills c.port_state with one index per worker: known addresses keep their state, new ones
    // get fresh state, addresses the snapshot no longer lists are forgotten (their state lives
    // on in older snapshots until those are freed). Throws std::bad_alloc.
    void attach(NatConfig& c);
    // The same for one worker only (an engine driven without a daemon: tests, benchmarks).
    std::shared_ptr<const PortIndex> build(const NatConfig& c, uint16_t worker);

private:
    using Registry = std::unordered_map<uint32_t, std::shared_ptr<AddressPorts>>;
    std::shared_ptr<const PortIndex> build_into(const NatConfig& c, uint16_t worker,
                                                Registry& next) const;
    uint16_t workers_;
    std::vector<Registry> known_;  // per worker, keyed by network-order address
};

}  // namespace snatgw
