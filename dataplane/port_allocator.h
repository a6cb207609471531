// Public ports of one worker (invariant I1).
//
// The port range of every pool address is split among the W workers by `port % W`, so the
// owner of any (address, port) is computable from the port alone, in O(1), by anyone: that is
// how a reply is steered to the worker holding its session. (With W a power of two the
// partition is also a single masked rte_flow match on the port's low bits.)
//
// A PortAllocator belongs to exactly one worker and is only touched by it: no lock, no atomic.
// Its state per address (port_state.h) is built by the control thread and adopted with a
// pointer swap when a snapshot is; the allocator only flips bits and counters in it.
//
// Per address and protocol (TCP, UDP and ICMP identifiers are separate spaces) a port is
// "owned" by the session that took it while no session owned it; a later session may share the
// port toward another remote (endpoint-dependent mapping) without owning it. Allocation picks
// an unowned port from a random starting point (RFC 6056: unpredictable) so any remote can take
// it. Only when every port of the partition is owned does it look for a port whose
// (port, remote) pair is free: the caller says how many pairs toward the remote are in use
// (PairCounts), so "none left" costs O(1), and otherwise a bounded number of ports is probed
// (the lately released first, then random ones) through the caller's `taken` predicate, which
// checks the outside session table. Never a scan of the partition.
//
// Ownership is one bit per port, not a count of users: when the owner ends while sharers remain,
// the port reads as unowned and a later allocation checks `taken` for its remote before using
// it (only while the address has sharers at all). ports_in_use() is therefore exact while no
// port is shared, and counts owned ports otherwise.
#pragma once

#include <cstdint>
#include <optional>

#include "port_state.h"

namespace snatgw {

class PortAllocator {
public:
    PortAllocator(uint16_t worker, uint16_t workers, uint64_t seed);

    uint16_t worker() const { return worker_; }
    uint16_t workers() const { return workers_; }

    // Uses `index` from now on (a new snapshot's, built by PortStateStore). No allocation, no
    // copy: the caller keeps the index alive while it is in use.
    void adopt(const PortIndex* index) { index_ = index; }
    const PortIndex* index() const { return index_; }

    bool has_address(uint32_t addr) const { return find(addr) != nullptr; }
    // A draining (or unknown) address gives no new ports; its sessions keep theirs.
    bool draining(uint32_t addr) const;

    // Picks a port of `addr` in `space` for a new session toward a remote. `pairs_in_use()`
    // must say how many pairs of `addr` toward it are held already (asked only when every port
    // is owned), `taken(port)` whether the (port, remote) pair is held in the session table.
    // Does not mark the port used: call acquire() once the session exists.
    template <typename PairsInUse, typename Taken>
    std::optional<uint16_t> allocate(uint32_t addr, PortSpace space, PairsInUse&& pairs_in_use,
                                     Taken&& taken);

    // Ports to probe for a pair when every port is owned: the lately released ones (newest
    // first), then random ones of the allocatable range; at most `max`. Returns how many were
    // written (0 for an unknown or draining address).
    uint32_t probe_ports(uint32_t addr, PortSpace space, uint16_t* out, uint32_t max);
    static constexpr uint32_t kMaxProbes = 128;  // as Linux's port search for a SNAT tuple

    // A session now uses the port. True when it owns it (no session did): keep that in the
    // session and give it back to release().
    bool acquire(uint32_t addr, PortSpace space, uint16_t port);
    void release(uint32_t addr, PortSpace space, uint16_t port, bool owner);

    // Whether a session owns this port (false when the port is not ours).
    bool owned(uint32_t addr, PortSpace space, uint16_t port) const;
    // Ports of the partition a session owns.
    uint32_t ports_in_use(uint32_t addr, PortSpace space) const;
    // Sessions on a port they share (do not own).
    uint32_t sharers(uint32_t addr, PortSpace space) const;
    // Sessions on the address, owners and sharers, every space (0: drained).
    uint32_t sessions_on(uint32_t addr) const;
    // Ports of the allocatable range this worker owns.
    uint32_t partition_size(uint32_t addr) const;

    // Bytes of port state of the adopted index, for the memory figures.
    std::size_t memory_bytes() const;

private:
    static constexpr uint32_t kRecent = 64;
    struct Recent {
        uint32_t addr;
        uint16_t port;
    };

    const PortEntry* find(uint32_t addr) const {
        return index_ != nullptr ? index_->find(addr) : nullptr;
    }
    // Re-counts owned_in_window when the snapshot moved the window (a range change).
    static void sync_window(const PortEntry& e);
    uint32_t random_below(uint32_t n);
    // First unowned index in [from, hi), then in [lo, from).
    static std::optional<uint32_t> find_unowned(const uint64_t* bits, uint32_t lo, uint32_t hi,
                                                uint32_t from);

    uint16_t worker_;
    uint16_t workers_;
    uint64_t rng_;
    const PortIndex* index_ = nullptr;
    // Pairs released lately, per space (ring, newest at recent_next - 1): when every port is
    // owned, a just-released port is the likeliest free pair (a storm toward one remote), so
    // they are probed before random ones.
    Recent recent_[kPortSpaceCount][kRecent] = {};
    uint32_t recent_next_[kPortSpaceCount] = {};
};

template <typename PairsInUse, typename Taken>
std::optional<uint16_t> PortAllocator::allocate(uint32_t addr, PortSpace space,
                                                PairsInUse&& pairs_in_use, Taken&& taken) {
    const PortEntry* e = find(addr);
    if (e == nullptr || e->draining || e->hi == e->lo) return std::nullopt;
    sync_window(*e);
    AddressPorts& ap = *e->ports;
    const int sp = static_cast<int>(space);
    const uint32_t span = e->hi - e->lo;
    if (ap.owned_in_window[sp] < span) {
        const uint64_t* bits = ap.bits(space);
        uint32_t from = e->lo + random_below(span);
        std::optional<uint32_t> first;
        for (uint32_t tries = 0; tries < kMaxProbes; ++tries) {
            const auto idx = find_unowned(bits, e->lo, e->hi, from);
            if (!idx || idx == first) break;  // none, or every unowned port was asked
            if (!first) first = idx;
            const uint16_t port = ap.part.port_at(*idx);
            // Unowned means unused unless the address has sharers: then check the pair.
            if (ap.sharers[sp] == 0 || !taken(port)) return port;
            from = *idx + 1 == e->hi ? e->lo : *idx + 1;
        }
    }
    // Every port is owned. No pair toward this remote left: refuse in O(1).
    if (pairs_in_use() >= span) return std::nullopt;
    uint16_t probes[kMaxProbes];
    const uint32_t n = probe_ports(addr, space, probes, kMaxProbes);
    for (uint32_t i = 0; i < n; ++i)
        if (!taken(probes[i])) return probes[i];
    return std::nullopt;
}

}  // namespace snatgw
