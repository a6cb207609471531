// The poll-mode loop of one worker lcore: receive bursts from its queue on the inside and the
// outside port, steer (software handoff where the NIC cannot), run the NAT engine, rewrite
// Ethernet for the next hop, transmit on the other port with buffered TX, and pass what is for
// the gateway itself (ARP, pings to it, TTL expiry, unknown next-hop MAC) to the control lcore.
//
// Everything a worker touches is either its own (engine, counters, TX buffers) or read-only
// while workers run (routes, ports), or lock-free by design (neighbour table, SPSC rings).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "counters.h"
#include "nat_worker.h"
#include "session_query.h"
#include "steering.h"

struct rte_ring;
struct rte_mbuf;
struct rte_eth_dev_tx_buffer;
struct rte_rcu_qsbr;

namespace snatgw {

class NeighbourTable;
class RouteTable;

inline constexpr uint16_t kMaxWorkers = 64;

// Why a frame went to the control lcore (kept in the mbuf's private area).
enum class PuntReason : uint8_t { Arp, Local, TtlExceeded, NoNeighbour, Transmit };

// Per-mbuf metadata in the pool's private area (pools are created with room for it).
struct MbufMeta {
    PuntReason reason;
    uint8_t out_side;    // Transmit / NoNeighbour: 0 inside, 1 outside
    uint16_t rx_port;
    uint32_t next_hop;   // NoNeighbour: the IPv4 next hop to resolve (host order)
};
MbufMeta* meta(rte_mbuf* m);

struct PortInfo {
    uint16_t port_id = 0;
    uint32_t addr = 0;          // interface address, host order
    uint32_t subnet = 0;        // host order
    uint32_t mask = 0;
    std::array<uint8_t, 6> mac{};
};

// Counters of the loop itself (the engine keeps its own). Written by the worker only.
struct LoopCounters {
    uint64_t rx[2] = {};             // by side
    uint64_t tx[2] = {};
    uint64_t tx_dropped[2] = {};     // TX queue full
    uint64_t handoff_sent = 0;
    uint64_t handoff_received = 0;
    uint64_t handoff_ring_full = 0;  // dropped: the peer's ring and our backlog were full
    uint64_t handoff_deferred = 0;   // waited in the backlog for room in the peer's ring
    uint64_t rx_paused = 0;          // loop passes that skipped RX (handoff backlog congested)
    uint64_t punted = 0;
    uint64_t punt_ring_full = 0;
    uint64_t no_route = 0;
    uint64_t unmatched_forwarded = 0;
    uint64_t multi_segment = 0;      // dropped: frames spanning several mbufs
    uint64_t foreign_mac = 0;        // dropped: not sent to our MAC (and not ARP)
    uint64_t not_forwarded = 0;      // dropped: to a destination a router must not forward
    uint64_t idle_sleeps = 0;
    uint64_t control_tx = 0;         // frames sent for the control lcore
};

// An operator request to one worker, answered between bursts (the worker alone touches its
// sessions). The control thread fills the request, then bumps `posted`; the worker answers,
// then sets `done = posted`. One request at a time per mailbox (the control thread serialises).
struct WorkerMailbox {
    enum class Op : uint8_t { Query, Flush };
    // Records a Query copies out, at most. The buffer belongs to the mailbox (not to the
    // request), so a worker answering after the requester gave up writes only here.
    static constexpr uint32_t kMaxRecords = 10000;

    WorkerMailbox() : records(kMaxRecords) {}

    std::atomic<uint32_t> posted{0};
    std::atomic<uint32_t> done{0};
    // request
    Op op = Op::Query;
    SessionMatch match;
    uint64_t skip = 0;
    uint32_t max = 0;              // records wanted (<= kMaxRecords)
    std::vector<SessionRecord> records;
    // answer
    uint64_t matched = 0;   // Query: matching sessions; Flush: sessions ended
    uint32_t copied = 0;
};

// Set up by the main lcore before the workers start; read-only while they run.
struct WorkerShared {
    uint16_t workers = 1;
    uint16_t burst = 32;
    uint32_t idle_polls = 64;
    uint32_t idle_sleep_us = 0;
    bool forward_unmatched = false;
    SteeringPlan steering;
    PortInfo port[2];                              // [Side::Inside], [Side::Outside]
    rte_ring* handoff[kMaxWorkers][kMaxWorkers] = {};  // [from][to], single producer/consumer
    rte_ring* punt[kMaxWorkers] = {};              // worker -> control
    rte_ring* control_tx[kMaxWorkers] = {};        // control -> worker, frames to send
    const NeighbourTable* neighbours = nullptr;
    const RouteTable* routes = nullptr;            // outside-bound next hops
    std::atomic<bool>* running = nullptr;
    uint64_t tsc_per_ms = 1;
    // Live configuration (invariant I6): the published NAT snapshot. A worker switches to a new
    // one at the top of a loop pass and reports a quiescent state at the end of every pass; the
    // control thread frees the old snapshot after a grace period (rte_rcu_qsbr_synchronize).
    std::atomic<const NatConfig*>* nat_config = nullptr;
    rte_rcu_qsbr* rcu = nullptr;
    WorkerMailbox* mailbox[kMaxWorkers] = {};
};

struct WorkerContext {
    uint16_t id = 0;
    NatWorker* engine = nullptr;
    EventSink* events = nullptr;  // the NAT event log, or nullptr
    const WorkerShared* shared = nullptr;
    LoopCounters counters;
    uint64_t start_tsc = 0;
};

// rte_eal_remote_launch entry point; arg is a WorkerContext*.
int worker_main(void* arg);

}  // namespace snatgw
