// The gateway's own duties, run on the main lcore: everything workers punt to it.
//
//   ARP         answer for the interface addresses (and the pool addresses on the outside port),
//               learn neighbours, resolve next hops (hold the frames of a burst while resolving,
//               retry the request while they wait), announce our addresses with gratuitous ARP
//               and ask for the configured next hops at start (and again until they answer);
//               the configured next hops are pinned in the neighbour table, unsolicited ARP
//               learns no new address once the table is 3/4 full, and the pending entries
//               created for one source address's frames are bounded
//   Local       ICMP echo replies from the gateway's addresses; anything else to them is dropped
//   TTL expiry  ICMP time exceeded back to the sender (rate limited, RFC 1812)
//
// It owns the neighbour table's write side and the hold queue. Frames it sends go to worker 0
// over that worker's control ring (a port queue has one writer: its worker).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arp.h"
#include "local_icmp.h"
#include "neighbour_table.h"
#include "worker_loop.h"

struct rte_mempool;
struct rte_mbuf;

namespace snatgw {

struct ControlCounters {
    uint64_t arp_requests_answered = 0;
    uint64_t arp_learned = 0;
    uint64_t arp_requests_sent = 0;
    uint64_t arp_ignored = 0;
    uint64_t echo_replies = 0;
    uint64_t local_dropped = 0;      // other traffic to the gateway's addresses
    uint64_t time_exceeded_sent = 0;
    uint64_t icmp_rate_limited = 0;
    uint64_t held = 0;               // frames held while their next hop resolves
    uint64_t hold_dropped = 0;       // hold_full + hold_timeout
    uint64_t hold_full = 0;          // dropped: no room (per neighbour or global cap)
    uint64_t hold_timeout = 0;       // dropped: next hop not resolved in time
    uint64_t released = 0;
    uint64_t resolved_at_punt = 0;   // punted, but resolved meanwhile: sent at once
    uint64_t alloc_failed = 0;
    uint64_t control_ring_full = 0;
    // The neighbour table (NeighbourTable::Stats, copied): its bounds at work.
    uint64_t neighbour_evicted = 0;          // least recently used entry evicted for a new one
    uint64_t neighbour_expired = 0;          // reclaimed: unused for 60 s, or unresolved and unasked
    uint64_t neighbour_pending_refused = 0;  // frames dropped: their source had its pending entries
    uint64_t neighbour_table_full = 0;       // frames or ARP not taken: no slot could be had
    uint64_t arp_unsolicited_ignored = 0;    // unsolicited ARP not learnt (table 3/4 full, pinned)
};

class ControlLcore {
public:
    ControlLcore(WorkerShared& shared, NeighbourTable& neighbours, rte_mempool* pool_by_side[2],
                 std::vector<uint32_t> outside_extra_addresses);

    // A frame waits at most this long for its next hop (Linux: 3 probes a second apart).
    static constexpr uint64_t kHoldMaxMs = 3000;

    // Sends gratuitous ARP for our addresses, pins the configured next hops in the neighbour
    // table and asks for them; housekeeping() asks again for as long as they are unresolved.
    void announce(uint64_t now_ms, const std::vector<uint32_t>& next_hops);
    // The pool addresses answered for on the outside port changed (a live configuration
    // change: added, draining and removed addresses); announces the new ones.
    void set_pool_addresses(std::vector<uint32_t> addresses);
    // Handles what the workers punted; returns how many frames it took.
    uint32_t poll(uint64_t now_ms);
    // Neighbour ageing, hold-queue timeouts, request retries for neighbours frames wait for
    // and for unresolved configured next hops, refresh requests. Call every 100 ms or less.
    void housekeeping(uint64_t now_ms);
    // Frees what is still held (shutdown).
    void drain();

    const ControlCounters& counters() const { return counters_; }
    const NeighbourTable& neighbours() const { return neighbours_; }
    const HoldQueue& hold_queue() const { return hold_; }

private:
    void handle(rte_mbuf* m, uint64_t now_ms);
    void handle_arp(rte_mbuf* m, int side, uint64_t now_ms);
    void handle_local(rte_mbuf* m, int side);
    void handle_ttl(rte_mbuf* m, int side, uint64_t now_ms);
    void handle_no_neighbour(rte_mbuf* m, uint64_t now_ms);
    void send_resolved(rte_mbuf* m, const MacAddr& mac);
    void release_held(uint32_t ip, const MacAddr& mac);
    void drop_held(const std::vector<void*>& frames, uint64_t& reason);
    // An ARP request for ip if one is due for its existing entry (retries, refreshes).
    void request(int side, uint32_t ip, uint64_t now_ms);
    void send_request(int side, uint32_t ip);
    void sync_neighbour_counters();
    void send(rte_mbuf* m, int side);
    rte_mbuf* alloc(int side);
    int side_of_port(uint16_t port_id) const { return port_id == shared_.port[0].port_id ? 0 : 1; }
    int side_for_next_hop(uint32_t ip) const;

    WorkerShared& shared_;
    NeighbourTable& neighbours_;
    HoldQueue hold_;
    std::vector<uint32_t> next_hops_;  // configured: resolved at start, retried until they are
    rte_mempool* pool_[2];
    ArpResponder responder_[2];
    TokenBucket icmp_rate_;
    ControlCounters counters_;
};

}  // namespace snatgw
