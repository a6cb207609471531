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
#include <cstddef>
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
struct WorkerContext;

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
    uint64_t worker_fatal = 0;       // the loop ended on an error (exception, failed set-up)
};

// How the loop spends its time (issue 13). Written by the worker only, with plain stores, once
// per loop pass (one rte_rdtsc() at the top of the pass; nothing per packet); read by the
// control side with relaxed loads. Durations are TSC cycles, converted at report time.
struct LoopTiming {
    // Loop pass durations (the work of one pass, not its idle sleep), log2 buckets of
    // microseconds: pass[0] < 1 us, pass[k] in [2^(k-1), 2^k) us for k = 1..14, pass[15] the
    // rest (>= 16384 us). Counted when the next pass starts.
    static constexpr std::size_t kBuckets = 16;
    uint64_t pass[kBuckets] = {};
    uint64_t pass_cycles = 0;          // sum of the counted passes' durations
    uint64_t poll_gap_max_cycles = 0;  // longest time between two RX polls (idle sleeps included)

    // Upper bound of bucket k < kBuckets - 1, in microseconds (exclusive).
    static constexpr uint64_t bound_us(std::size_t k) { return uint64_t{1} << k; }
};

// The buckets' bounds in TSC cycles, for one TSC frequency: bucket(d) is the bucket of a pass
// of d cycles. A few compares from the bottom (passes are mostly short), no division.
class PassBuckets {
public:
    explicit PassBuckets(uint64_t tsc_hz) noexcept {
        // d cycles < 2^k us  <=>  d < tsc_hz * 2^k / 1e6  <=>  d < ceil(tsc_hz * 2^k / 1e6)
        for (std::size_t k = 0; k + 1 < LoopTiming::kBuckets; ++k)
            bound_[k] = ((tsc_hz << k) + 999999) / 1000000;
    }
    std::size_t bucket(uint64_t cycles) const noexcept {
        std::size_t b = 0;
        while (b + 1 < LoopTiming::kBuckets && cycles >= bound_[b]) ++b;
        return b;
    }
    uint64_t bound_cycles(std::size_t k) const noexcept { return bound_[k]; }

private:
    uint64_t bound_[LoopTiming::kBuckets - 1] = {};
};

// Why a worker's loop ended abnormally: written once by the worker (the reason, then `raised`
// with release ordering), read by others after an acquire load of `raised`. Fixed size: the
// worker records it without allocating.
struct WorkerFault {
    static constexpr std::size_t kReasonMax = 192;
    std::atomic<bool> raised{false};
    char reason[kReasonMax] = {};
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
    // The daemon-wide stop request its main lcore watches (what SIGTERM sets): a worker whose
    // loop fails raises it, so the daemon stops through its normal path. May be null (tests).
    std::atomic<bool>* stop = nullptr;
    uint64_t tsc_per_ms = 1;
    uint64_t tsc_hz = 1000;  // for the loop timing buckets
    // Live configuration (invariant I6): the published NAT snapshot. A worker switches to a new
    // one at the top of a loop pass and reports a quiescent state at the end of every pass; the
    // control thread frees the old snapshot after a grace period (rte_rcu_qsbr_synchronize).
    std::atomic<const NatConfig*>* nat_config = nullptr;
    rte_rcu_qsbr* rcu = nullptr;
    WorkerMailbox* mailbox[kMaxWorkers] = {};
    // Tests only (null in the daemon): called at the top of every loop pass; it may throw, to
    // exercise the lcore entry's guard on the real loop. One predictable branch per pass.
    void (*pass_hook)(WorkerContext&) = nullptr;
};

struct WorkerContext {
    uint16_t id = 0;
    NatWorker* engine = nullptr;
    EventSink* events = nullptr;  // the NAT event log, or nullptr
    const WorkerShared* shared = nullptr;
    LoopCounters counters;
    LoopTiming timing;
    WorkerFault fault;
    uint64_t start_tsc = 0;
};

// rte_eal_remote_launch entry point; arg is a WorkerContext*. Nothing escapes it: see
// run_worker_guarded(). Returns 0 after a normal stop, -1 after a fatal error.
int worker_main(void* arg) noexcept;

// What a worker lcore runs: returns nullptr after a normal stop, or a static string saying why
// the loop could not run. May throw.
using WorkerBody = const char* (*)(WorkerContext&);

// The lcore entry's guard (worker_main() is this with the real loop; tests give other bodies).
// Runs body(ctx); when it throws (std::exception or anything else) or returns a reason, counts
// counters.worker_fatal, records the reason in ctx.fault (no allocation) and raises
// *ctx.shared->stop, so the daemon stops through its normal path. Returns 0 or -1.
int run_worker_guarded(WorkerContext& ctx, WorkerBody body) noexcept;

}  // namespace snatgw
