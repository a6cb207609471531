// The gateway's own duties, run on the main lcore: everything workers punt to it.
//
//   ARP         answer for the interface addresses (and the pool addresses on the outside port),
//               learn neighbours, resolve next hops (hold a few frames while resolving), announce
//               our addresses with gratuitous ARP at start
//   Local       ICMP echo replies from the gateway's addresses; anything else to them is dropped
//   TTL expiry  ICMP time exceeded back to the sender (rate limited, RFC 1812)
//
// It owns the neighbour table's write side and the hold queue. Frames it sends go to worker 0
// over that worker's control ring (a port queue has one writer: its worker).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

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
    uint64_t hold_dropped = 0;       // hold queue full, or not resolved in time
    uint64_t released = 0;
    uint64_t alloc_failed = 0;
    uint64_t control_ring_full = 0;
};

class ControlLcore {
public:
    ControlLcore(WorkerShared& shared, NeighbourTable& neighbours, rte_mempool* pool_by_side[2],
                 std::vector<uint32_t> outside_extra_addresses);

    // Sends gratuitous ARP for our addresses and asks for the known next hops.
    void announce(uint64_t now_ms, const std::vector<uint32_t>& next_hops);
    // The pool addresses answered for on the outside port changed (a live configuration
    // change: added, draining and removed addresses); announces the new ones.
    void set_pool_addresses(std::vector<uint32_t> addresses);
    // Handles what the workers punted; returns how many frames it took.
    uint32_t poll(uint64_t now_ms);
    // Neighbour ageing, hold-queue timeouts, refresh requests. Call every few ms.
    void housekeeping(uint64_t now_ms);
    // Frees what is still held (shutdown).
    void drain();

    const ControlCounters& counters() const { return counters_; }
    const NeighbourTable& neighbours() const { return neighbours_; }

private:
    void handle(rte_mbuf* m, uint64_t now_ms);
    void handle_arp(rte_mbuf* m, int side, uint64_t now_ms);
    void handle_local(rte_mbuf* m, int side);
    void handle_ttl(rte_mbuf* m, int side, uint64_t now_ms);
    void handle_no_neighbour(rte_mbuf* m, uint64_t now_ms);
    void request(int side, uint32_t ip, uint64_t now_ms);
    void send(rte_mbuf* m, int side);
    rte_mbuf* alloc(int side);
    int side_of_port(uint16_t port_id) const { return port_id == shared_.port[0].port_id ? 0 : 1; }
    int side_for_next_hop(uint32_t ip) const;

    WorkerShared& shared_;
    NeighbourTable& neighbours_;
    HoldQueue hold_;
    rte_mempool* pool_[2];
    ArpResponder responder_[2];
    TokenBucket icmp_rate_;
    ControlCounters counters_;
};

}  // namespace snatgw
