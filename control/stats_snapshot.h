// One consistent-enough copy of every counter of a running gateway, taken on the control side
// and handed to the renderers: the text report (stats_report.h), the stats JSON of the control
// socket (stats_to_json here), Prometheus (prometheus_metrics.h) and DPDK telemetry
// (telemetry.h). Renderers never touch live counters, only a StatsSnapshot.
//
// Workers write their counters with plain stores (one writer each); collect_stats() reads every
// field with a relaxed atomic load, so a value is never torn nor cached by the compiler. The
// copy is not a transaction: two fields may be a few packets apart, as with `conntrack -S`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_lcore.h"
#include "counters.h"
#include "port_allocator.h"
#include "steering.h"
#include "worker_loop.h"

struct rte_mempool;

namespace snatgw {

class NatWorker;
struct NatConfig;

// The NAT event log's own counters (records written, records lost to a full buffer).
struct EventCounters {
    uint64_t logged = 0, lost = 0;
};

struct WorkerStats {
    uint16_t id = 0;
    WorkerCounters engine;
    LoopCounters loop;
    LoopTiming timing;              // total(): buckets and sums added, the gap's max taken
    uint64_t sessions = 0;          // live sessions in the table
    uint64_t session_capacity = 0;  // table size
};

// What a DPDK port itself counted (rte_eth_stats): frames the driver could not deliver never
// reach a worker's counters.
struct EthPortStats {
    bool present = false;  // false: no such port (the fields are zero)
    uint64_t rx = 0, tx = 0, missed = 0, rx_errors = 0, rx_nombuf = 0, tx_errors = 0;
};

// A port's mbuf pool: how many of its buffers are out (in rings, held by a worker or the
// control lcore, or in flight). Mbufs parked in the per-lcore caches count as free, so the
// figure moves by up to cache size x lcores without a leak; a leak shows as a level that keeps
// climbing after the traffic stops.
struct MbufPoolStats {
    bool present = false;  // false: no pool (the fields are zero)
    uint64_t in_use = 0, size = 0;
};

inline constexpr std::size_t kPortSpaces = static_cast<std::size_t>(PortSpace::Count);
inline constexpr const char* kPortSpaceNames[kPortSpaces] = {"tcp", "udp", "icmp"};
inline constexpr const char* kSideNames[2] = {"inside", "outside"};

// Ports of one pool address carrying at least one session, summed over the workers.
struct PortUse {
    std::string pool;
    uint32_t address = 0;                 // host order
    uint64_t in_use[kPortSpaces] = {};    // by PortSpace
    uint64_t capacity_per_protocol = 0;   // sum of the workers' partition sizes
};

struct StatsSnapshot {
    double uptime_s = 0;
    uint64_t tsc_hz = 0;                  // converts the loop timing's cycles (0: unknown)
    SteeringPlan steering;
    std::vector<WorkerStats> workers;
    ControlCounters control;
    EthPortStats ports[2];                // [Side::Inside], [Side::Outside]
    MbufPoolStats mbufs[2];               // each port's own pool, by side
    std::vector<PortUse> ports_in_use;    // in configuration order (pool, then address)
    EventCounters events;

    // The sum over the workers (id 0).
    WorkerStats total() const;
};

// What the daemon can hand over; every pointer may be null and every vector empty.
struct StatsSources {
    std::vector<const NatWorker*> engines;
    std::vector<const LoopCounters*> loops;  // same order as engines (missing: zeros)
    std::vector<const LoopTiming*> timings;  // same order as engines (missing: zeros)
    uint64_t tsc_hz = 0;
    const ControlCounters* control = nullptr;
    SteeringPlan steering;
    const NatConfig* config = nullptr;       // for the pool addresses of ports_in_use
    int port_ids[2] = {-1, -1};              // DPDK port ids by side; -1: none
    const rte_mempool* mbuf_pools[2] = {nullptr, nullptr};  // each port's pool, by side
    EventCounters events;
    double uptime_s = 0;
};

StatsSnapshot collect_stats(const StatsSources& sources);

// TSC cycles as seconds / nanoseconds at `tsc_hz` (0 when tsc_hz is 0).
double cycles_to_seconds(uint64_t cycles, uint64_t tsc_hz);
uint64_t cycles_to_ns(uint64_t cycles, uint64_t tsc_hz);
// Loop passes counted in a LoopTiming (the sum of its buckets).
uint64_t loop_passes(const LoopTiming& t);

// "rss-src" / "software-handoff", "rte_flow" / "software-handoff".
const char* inside_steering_name(InsideSteering s);
const char* outside_steering_name(OutsideSteering s);

// The stats result of the control socket (the shape is documented with snatctl's reader).
nlohmann::json stats_to_json(const StatsSnapshot& s);

}  // namespace snatgw
