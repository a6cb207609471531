// Public ports of one worker (invariant I1).
//
// The port range of every pool address is split among the W workers by `port % W`, so the
// owner of any (address, port) is computable from the port alone, in O(1), by anyone: that is
// how a reply is steered to the worker holding its session. (With W a power of two the
// partition is also a single masked rte_flow match on the port's low bits.)
//
// A PortAllocator belongs to exactly one worker and is only touched by it: no lock, no atomic.
// Per address and protocol (TCP, UDP and ICMP identifiers are separate spaces) it keeps, for
// each port of its partition, how many sessions use it, and a bitmap of unused ports.
// Allocation picks an unused port from a random starting point (RFC 6056: unpredictable) so
// any remote can take it. Only when every port of the partition already carries a session does
// it look for a port whose (port, remote) pair is free (endpoint-dependent mapping): the caller
// says how many pairs toward the remote are in use (PairCounts), so "none left" costs O(1),
// and otherwise a bounded number of ports is probed (the lately released first, then random
// ones) through the caller's `taken` predicate, which checks the outside session table. Never
// a scan of the partition.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace snatgw {

inline uint16_t port_owner(uint16_t port, uint16_t workers) {
    return static_cast<uint16_t>(port % workers);
}

enum class PortSpace : uint8_t { Tcp, Udp, Icmp, Count };

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

class PortAllocator {
public:
    PortAllocator(uint16_t worker, uint16_t workers, uint64_t seed);

    uint16_t worker() const { return worker_; }
    uint16_t workers() const { return workers_; }

    // Makes `addr` allocatable with the given range. Safe to repeat; a different range
    // replaces the allocatable range live: ports of the old range keep their use counts (their
    // sessions release them as usual) but are not handed out again unless the new range has
    // them. Clears the draining mark.
    void add_address(uint32_t addr, uint16_t port_min, uint16_t port_max);
    bool has_address(uint32_t addr) const { return find(addr) != nullptr; }
    // A draining address gives no new ports; its sessions keep theirs until they end.
    void set_draining(uint32_t addr, bool draining);
    void set_all_draining();
    bool draining(uint32_t addr) const;

    // Picks a port of `addr` in `space` for a new session toward a remote. `pairs_in_use()`
    // must say how many pairs of `addr` toward it are held already (asked only when every port
    // carries a session), `taken(port)` whether the (port, remote) pair is held in the session
    // table. Does not mark the port used: call acquire() once the session exists.
    template <typename PairsInUse, typename Taken>
    std::optional<uint16_t> allocate(uint32_t addr, PortSpace space, PairsInUse&& pairs_in_use,
                                     Taken&& taken);

    // Ports to probe for a pair when every port carries a session: the lately released ones
    // (newest first), then random ones of the allocatable range; at most `max`. Returns how
    // many were written (0 for an unknown or draining address).
    uint32_t probe_ports(uint32_t addr, PortSpace space, uint16_t* out, uint32_t max);
    static constexpr uint32_t kMaxProbes = 128;  // as Linux's port search for a SNAT tuple

    void acquire(uint32_t addr, PortSpace space, uint16_t port);
    void release(uint32_t addr, PortSpace space, uint16_t port);

    // Sessions using this port (0 when the port is not ours).
    uint32_t use_count(uint32_t addr, PortSpace space, uint16_t port) const;
    // Ports of the partition with at least one session.
    uint32_t ports_in_use(uint32_t addr, PortSpace space) const;
    // Ports of the allocatable range this worker owns.
    uint32_t partition_size(uint32_t addr) const;

    // Bytes held, for the memory figures.
    std::size_t memory_bytes() const;

private:
    static constexpr uint32_t kRecent = 64;
    struct Space {
        std::vector<uint32_t> users;     // sessions per partition index
        std::vector<uint64_t> unused;    // bit set: allocatable (in the active range), unused
        uint32_t in_use = 0;             // indexes with users > 0
        uint32_t free_active = 0;        // bits set in `unused`
        // Ports released lately (ring, newest at recent_next - 1): when every port carries a
        // session, a just-released port is the likeliest free pair (a storm toward one remote),
        // so they are probed before random ones.
        uint16_t recent[kRecent] = {};
        uint32_t recent_next = 0;
    };
    struct AddressPorts {
        // Every port this worker ever owned for the address (the union of the ranges it was
        // configured with), so a session on a port of an older range still finds its count.
        Partition part;
        uint16_t port_min = 0, port_max = 0;  // of `part`
        uint32_t active_lo = 0, active_hi = 0;  // allocatable indexes [lo, hi) of `part`
        bool draining = false;
        Space spaces[static_cast<int>(PortSpace::Count)];

        bool active(uint32_t idx) const { return idx >= active_lo && idx < active_hi; }
    };
    static void build(AddressPorts& ap, uint16_t port_min, uint16_t port_max,
                      const AddressPorts* old, uint16_t worker, uint16_t workers);

    AddressPorts* find(uint32_t addr);
    const AddressPorts* find(uint32_t addr) const;
    uint32_t random_below(uint32_t n);
    std::optional<uint32_t> find_unused(const Space& s, uint32_t count, uint32_t start) const;

    uint16_t worker_;
    uint16_t workers_;
    uint64_t rng_;
    // Address -> index in addrs_: open addressing, linear probing, power-of-two size (the
    // packet path looks an address up on every new session; std::unordered_map was a hotspot).
    static constexpr uint32_t kEmpty = 0xffffffffu;
    struct SlotEntry {
        uint32_t addr;
        uint32_t index;
    };
    std::vector<SlotEntry> slots_;
    std::vector<AddressPorts> addrs_;
    std::vector<uint32_t> addr_of_;  // addrs_[i] belongs to addr_of_[i]
};

template <typename PairsInUse, typename Taken>
std::optional<uint16_t> PortAllocator::allocate(uint32_t addr, PortSpace space,
                                                PairsInUse&& pairs_in_use, Taken&& taken) {
    AddressPorts* ap = find(addr);
    if (ap == nullptr || ap->draining || ap->active_hi == ap->active_lo) return std::nullopt;
    const Partition& part = ap->part;
    Space& s = ap->spaces[static_cast<int>(space)];
    if (s.free_active != 0) {
        if (auto idx = find_unused(s, part.count, random_below(part.count))) {
            // acquire() comes after the session inserts: start loading its counter now.
            __builtin_prefetch(&s.users[*idx], 1);
            return part.port_at(*idx);
        }
    }
    // Every port carries a session. No pair toward this remote left: refuse in O(1).
    if (pairs_in_use() >= ap->active_hi - ap->active_lo) return std::nullopt;
    uint16_t probes[kMaxProbes];
    const uint32_t n = probe_ports(addr, space, probes, kMaxProbes);
    for (uint32_t i = 0; i < n; ++i)
        if (!taken(probes[i])) return probes[i];
    return std::nullopt;
}

}  // namespace snatgw
