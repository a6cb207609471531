// Taking and summing the counters, and the stats JSON; see stats_snapshot.h.
#include "stats_snapshot.h"

#include <arpa/inet.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <algorithm>

#include "config_builder.h"
#include "nat_config.h"
#include "nat_worker.h"

namespace snatgw {

namespace {

// Every counter struct is a flat list of uint64_t. The visitors below name each field once, and
// serve both the cross-thread copy and the sum; the size checks make a new field that is not
// listed here a compile error instead of a counter that silently reads zero.
static_assert(sizeof(WorkerCounters) ==
                  8 * (23 + kDropReasonCount + static_cast<std::size_t>(TcpState::Count) + 4),
              "WorkerCounters changed: update for_each_field()");
static_assert(sizeof(LoopCounters) == 8 * 21, "LoopCounters changed: update for_each_field()");
static_assert(sizeof(LoopTiming) == 8 * (LoopTiming::kBuckets + 2),
              "LoopTiming changed: update copy_timing() and StatsSnapshot::total()");
static_assert(sizeof(ControlCounters) == 8 * 21,
              "ControlCounters changed: update for_each_field()");

template <typename F>
void for_each_field(WorkerCounters& a, const WorkerCounters& b, F f) {
    for (int s = 0; s < 2; ++s) {
        f(a.rx[s], b.rx[s]);
        f(a.forwarded[s], b.forwarded[s]);
    }
    f(a.found, b.found);
    f(a.sessions_created, b.sessions_created);
    f(a.sessions_reopened, b.sessions_reopened);
    f(a.sessions_expired, b.sessions_expired);
    f(a.sessions_freed, b.sessions_freed);
    f(a.sessions_evicted, b.sessions_evicted);
    f(a.sessions_reclaimed, b.sessions_reclaimed);
    f(a.pairs_reused_timewait, b.pairs_reused_timewait);
    f(a.pairs_reuse_refused, b.pairs_reuse_refused);
    f(a.tcp_rst_ignored, b.tcp_rst_ignored);
    f(a.pair_count_failed, b.pair_count_failed);
    f(a.sessions_flushed, b.sessions_flushed);
    f(a.insert_failed, b.insert_failed);
    f(a.handoffs, b.handoffs);
    f(a.punted, b.punted);
    f(a.ttl_exceeded, b.ttl_exceeded);
    f(a.fragments, b.fragments);
    f(a.fragments_held, b.fragments_held);
    f(a.fragment_datagrams_evicted, b.fragment_datagrams_evicted);
    for (std::size_t i = 0; i < a.drops.size(); ++i) f(a.drops[i], b.drops[i]);
    for (std::size_t i = 0; i < a.tcp_state.size(); ++i) f(a.tcp_state[i], b.tcp_state[i]);
    f(a.udp_sessions, b.udp_sessions);
    f(a.icmp_sessions, b.icmp_sessions);
    f(a.fragment_datagrams, b.fragment_datagrams);
    f(a.fragments_waiting, b.fragments_waiting);
}

template <typename F>
void for_each_field(LoopCounters& a, const LoopCounters& b, F f) {
    for (int s = 0; s < 2; ++s) {
        f(a.rx[s], b.rx[s]);
        f(a.tx[s], b.tx[s]);
        f(a.tx_dropped[s], b.tx_dropped[s]);
    }
    f(a.handoff_sent, b.handoff_sent);
    f(a.handoff_received, b.handoff_received);
    f(a.handoff_ring_full, b.handoff_ring_full);
    f(a.handoff_deferred, b.handoff_deferred);
    f(a.rx_paused, b.rx_paused);
    f(a.punted, b.punted);
    f(a.punt_ring_full, b.punt_ring_full);
    f(a.no_route, b.no_route);
    f(a.unmatched_forwarded, b.unmatched_forwarded);
    f(a.multi_segment, b.multi_segment);
    f(a.foreign_mac, b.foreign_mac);
    f(a.not_forwarded, b.not_forwarded);
    f(a.idle_sleeps, b.idle_sleeps);
    f(a.control_tx, b.control_tx);
    f(a.worker_fatal, b.worker_fatal);
}

template <typename F>
void for_each_field(ControlCounters& a, const ControlCounters& b, F f) {
    f(a.arp_requests_answered, b.arp_requests_answered);
    f(a.arp_learned, b.arp_learned);
    f(a.arp_requests_sent, b.arp_requests_sent);
    f(a.arp_ignored, b.arp_ignored);
    f(a.echo_replies, b.echo_replies);
    f(a.local_dropped, b.local_dropped);
    f(a.time_exceeded_sent, b.time_exceeded_sent);
    f(a.icmp_rate_limited, b.icmp_rate_limited);
    f(a.held, b.held);
    f(a.hold_dropped, b.hold_dropped);
    f(a.hold_full, b.hold_full);
    f(a.hold_timeout, b.hold_timeout);
    f(a.released, b.released);
    f(a.resolved_at_punt, b.resolved_at_punt);
    f(a.alloc_failed, b.alloc_failed);
    f(a.control_ring_full, b.control_ring_full);
    f(a.neighbour_evicted, b.neighbour_evicted);
    f(a.neighbour_expired, b.neighbour_expired);
    f(a.neighbour_pending_refused, b.neighbour_pending_refused);
    f(a.neighbour_table_full, b.neighbour_table_full);
    f(a.arp_unsolicited_ignored, b.arp_unsolicited_ignored);
}

// A counter written by another thread with plain stores: read it whole, and really read it.
void load(uint64_t& dst, const uint64_t& src) { dst = __atomic_load_n(&src, __ATOMIC_RELAXED); }
void add(uint64_t& dst, const uint64_t& src) { dst += src; }

template <typename T>
T copy_of(const T& live) {
    T c;
    for_each_field(c, live, load);
    return c;
}

LoopTiming copy_timing(const LoopTiming& live) {
    LoopTiming c;
    for (std::size_t b = 0; b < LoopTiming::kBuckets; ++b) load(c.pass[b], live.pass[b]);
    load(c.pass_cycles, live.pass_cycles);
    load(c.poll_gap_max_cycles, live.poll_gap_max_cycles);
    return c;
}

EthPortStats eth_stats(int port_id) {
    EthPortStats p;
    if (port_id < 0) return p;
    rte_eth_stats es{};
    if (rte_eth_stats_get(static_cast<uint16_t>(port_id), &es) != 0) return p;
    p.present = true;
    p.rx = es.ipackets;
    p.tx = es.opackets;
    p.missed = es.imissed;
    p.rx_errors = es.ierrors;
    p.rx_nombuf = es.rx_nombuf;
    p.tx_errors = es.oerrors;
    return p;
}

MbufPoolStats mbuf_stats(const rte_mempool* pool) {
    MbufPoolStats m;
    if (pool == nullptr) return m;
    m.present = true;
    m.size = pool->size;
    // Reads the ring count and the per-lcore cache lengths without a lock; safe from any thread.
    m.in_use = rte_mempool_in_use_count(pool);
    return m;
}

}  // namespace

WorkerStats StatsSnapshot::total() const {
    WorkerStats t;
    for (const WorkerStats& w : workers) {
        for_each_field(t.engine, w.engine, add);
        for_each_field(t.loop, w.loop, add);
        for (std::size_t b = 0; b < LoopTiming::kBuckets; ++b) t.timing.pass[b] += w.timing.pass[b];
        t.timing.pass_cycles += w.timing.pass_cycles;
        t.timing.poll_gap_max_cycles =
            std::max(t.timing.poll_gap_max_cycles, w.timing.poll_gap_max_cycles);
        t.sessions += w.sessions;
        t.session_capacity += w.session_capacity;
    }
    return t;
}

StatsSnapshot collect_stats(const StatsSources& src) {
    StatsSnapshot s;
    s.uptime_s = src.uptime_s;
    s.tsc_hz = src.tsc_hz;
    s.steering = src.steering;
    s.events = src.events;
    for (std::size_t w = 0; w < src.engines.size(); ++w) {
        const NatWorker* e = src.engines[w];
        if (e == nullptr) continue;
        WorkerStats ws;
        ws.id = e->id();
        ws.engine = copy_of(e->counters());
        if (w < src.loops.size() && src.loops[w] != nullptr) ws.loop = copy_of(*src.loops[w]);
        if (w < src.timings.size() && src.timings[w] != nullptr)
            ws.timing = copy_timing(*src.timings[w]);
        // Sizes are 32-bit fields written by the worker; the accessors are a single aligned
        // load each (never torn on the targets DPDK supports).
        ws.sessions = e->sessions().size();
        ws.session_capacity = e->sessions().capacity();
        s.workers.push_back(ws);
    }
    if (src.control != nullptr) s.control = copy_of(*src.control);
    for (int side = 0; side < 2; ++side) {
        s.ports[side] = eth_stats(src.port_ids[side]);
        s.mbufs[side] = mbuf_stats(src.mbuf_pools[side]);
    }
    if (src.config != nullptr) {
        for (const Pool& pool : src.config->pools) {
            for (uint32_t addr : pool.addresses) {
                PortUse u;
                u.pool = pool.name;
                u.address = addr;
                const uint32_t wire = htonl(addr);  // the allocator keys addresses as on the wire
                for (const NatWorker* e : src.engines) {
                    if (e == nullptr) continue;
                    for (std::size_t sp = 0; sp < kPortSpaces; ++sp)
                        u.in_use[sp] += e->ports().ports_in_use(wire, static_cast<PortSpace>(sp));
                    u.capacity_per_protocol += e->ports().partition_size(wire);
                }
                s.ports_in_use.push_back(u);
            }
        }
    }
    return s;
}

double cycles_to_seconds(uint64_t cycles, uint64_t tsc_hz) {
    return tsc_hz == 0 ? 0.0 : static_cast<double>(cycles) / static_cast<double>(tsc_hz);
}

uint64_t cycles_to_ns(uint64_t cycles, uint64_t tsc_hz) {
    if (tsc_hz == 0) return 0;
    // cycles * 1e9 / tsc_hz without overflow: whole seconds, then the rest (rest * 1e9 fits
    // in 64 bits for any TSC below 18 GHz).
    return cycles / tsc_hz * 1000000000u + cycles % tsc_hz * 1000000000u / tsc_hz;
}

uint64_t loop_passes(const LoopTiming& t) {
    uint64_t n = 0;
    for (uint64_t c : t.pass) n += c;
    return n;
}

const char* inside_steering_name(InsideSteering s) {
    return s == InsideSteering::Rss ? "rss-src" : "software-handoff";
}

const char* outside_steering_name(OutsideSteering s) {
    return s == OutsideSteering::Flow ? "rte_flow" : "software-handoff";
}

namespace {

nlohmann::json worker_json(const WorkerStats& w, uint64_t tsc_hz) {
    const WorkerCounters& e = w.engine;
    const LoopCounters& l = w.loop;
    return {
        {"worker_fatal", l.worker_fatal},
        {"loop_passes", loop_passes(w.timing)},
        {"poll_gap_max_ns", cycles_to_ns(w.timing.poll_gap_max_cycles, tsc_hz)},
        {"rx_inside", l.rx[0]},
        {"rx_outside", l.rx[1]},
        {"tx_inside", l.tx[0]},
        {"tx_outside", l.tx[1]},
        {"found", e.found},
        {"new", e.sessions_created},
        {"reopened", e.sessions_reopened},
        {"translated", e.forwarded[0] + e.forwarded[1]},
        {"handoffs", l.handoff_sent},
        {"handoff_ring_full", l.handoff_ring_full},
        {"insert_failed", e.insert_failed},
        {"expired", e.sessions_expired},
        {"evicted", e.sessions_evicted},
        {"reclaimed", e.sessions_reclaimed},
        {"pairs_reused_timewait", e.pairs_reused_timewait},
        {"pairs_reuse_refused", e.pairs_reuse_refused},
        {"tcp_rst_ignored", e.tcp_rst_ignored},
        {"pair_count_failed", e.pair_count_failed},
        {"flushed", e.sessions_flushed},
        {"drops", e.drop_total()},
        {"sessions", w.sessions},
        {"session_capacity", w.session_capacity},
    };
}

nlohmann::json loop_json(const LoopCounters& l) {
    return {
        {"tx_dropped_inside", l.tx_dropped[0]},
        {"tx_dropped_outside", l.tx_dropped[1]},
        {"handoff_sent", l.handoff_sent},
        {"handoff_received", l.handoff_received},
        {"handoff_ring_full", l.handoff_ring_full},
        {"handoff_deferred", l.handoff_deferred},
        {"rx_paused", l.rx_paused},
        {"punted", l.punted},
        {"punt_ring_full", l.punt_ring_full},
        {"no_route", l.no_route},
        {"unmatched_forwarded", l.unmatched_forwarded},
        {"multi_segment", l.multi_segment},
        {"foreign_mac", l.foreign_mac},
        {"not_forwarded", l.not_forwarded},
        {"idle_sleeps", l.idle_sleeps},
        {"control_tx", l.control_tx},
        {"worker_fatal", l.worker_fatal},
    };
}

nlohmann::json control_json(const ControlCounters& c) {
    return {
        {"arp_requests_answered", c.arp_requests_answered},
        {"arp_learned", c.arp_learned},
        {"arp_requests_sent", c.arp_requests_sent},
        {"arp_ignored", c.arp_ignored},
        {"echo_replies", c.echo_replies},
        {"local_dropped", c.local_dropped},
        {"time_exceeded_sent", c.time_exceeded_sent},
        {"icmp_rate_limited", c.icmp_rate_limited},
        {"held", c.held},
        {"hold_dropped", c.hold_dropped},
        {"hold_full", c.hold_full},
        {"hold_timeout", c.hold_timeout},
        {"released", c.released},
        {"resolved_at_punt", c.resolved_at_punt},
        {"alloc_failed", c.alloc_failed},
        {"control_ring_full", c.control_ring_full},
        {"neighbour_evicted", c.neighbour_evicted},
        {"neighbour_expired", c.neighbour_expired},
        {"neighbour_pending_refused", c.neighbour_pending_refused},
        {"neighbour_table_full", c.neighbour_table_full},
        {"arp_unsolicited_ignored", c.arp_unsolicited_ignored},
    };
}

}  // namespace

nlohmann::json stats_to_json(const StatsSnapshot& s) {
    using nlohmann::json;
    json j;
    j["uptime_s"] = s.uptime_s;
    j["steering"] = {{"inside", inside_steering_name(s.steering.inside)},
                     {"outside", outside_steering_name(s.steering.outside)}};
    json workers = json::array();
    for (const WorkerStats& w : s.workers) {
        json wj = worker_json(w, s.tsc_hz);
        wj["worker"] = w.id;
        workers.push_back(std::move(wj));
    }
    j["workers"] = std::move(workers);
    const WorkerStats t = s.total();
    j["total"] = worker_json(t, s.tsc_hz);

    json drops = json::object();
    for (std::size_t i = 0; i < kDropReasonCount; ++i)
        drops[std::string(kDropReasonNames[i])] = t.engine.drops[i];
    j["drops"] = std::move(drops);

    json tcp = json::object();
    for (std::size_t i = 1; i < t.engine.tcp_state.size(); ++i)  // 1: skip None (not TCP)
        tcp[tcp_state_name(static_cast<TcpState>(i))] = t.engine.tcp_state[i];
    j["sessions_by_state"] = {
        {"tcp", std::move(tcp)}, {"udp", t.engine.udp_sessions}, {"icmp", t.engine.icmp_sessions}};

    json ports_in_use = json::array();
    for (const PortUse& u : s.ports_in_use) {
        json uj = {{"pool", u.pool}, {"address", format_ipv4(u.address)}};
        for (std::size_t sp = 0; sp < kPortSpaces; ++sp) uj[kPortSpaceNames[sp]] = u.in_use[sp];
        uj["per_protocol_capacity"] = u.capacity_per_protocol;
        ports_in_use.push_back(std::move(uj));
    }
    j["ports_in_use"] = std::move(ports_in_use);

    j["loop"] = loop_json(t.loop);
    j["loop"]["passes"] = loop_passes(t.timing);
    j["loop"]["pass_time_ns"] = cycles_to_ns(t.timing.pass_cycles, s.tsc_hz);
    j["loop"]["poll_gap_max_ns"] = cycles_to_ns(t.timing.poll_gap_max_cycles, s.tsc_hz);
    // The pass time histogram: counts[k] for k < 15 are passes shorter than bounds_us[k] (and
    // at least bounds_us[k-1]); counts[15] the longer ones.
    json bounds = json::array();
    for (std::size_t k = 0; k + 1 < LoopTiming::kBuckets; ++k) bounds.push_back(LoopTiming::bound_us(k));
    auto counts = [](const LoopTiming& lt) {
        json c = json::array();
        for (uint64_t n : lt.pass) c.push_back(n);
        return c;
    };
    json per_worker = json::array();
    for (const WorkerStats& w : s.workers) per_worker.push_back(counts(w.timing));
    j["loop_pass_time"] = {
        {"bounds_us", std::move(bounds)}, {"total", counts(t.timing)}, {"workers", std::move(per_worker)}};
    j["control"] = control_json(s.control);

    json ports = json::object();
    for (int side = 0; side < 2; ++side) {
        const EthPortStats& p = s.ports[side];
        if (!p.present) continue;
        ports[kSideNames[side]] = {{"rx", p.rx},
                                   {"tx", p.tx},
                                   {"missed", p.missed},
                                   {"rx_errors", p.rx_errors},
                                   {"rx_nombuf", p.rx_nombuf},
                                   {"tx_errors", p.tx_errors}};
    }
    j["ports"] = std::move(ports);

    json mbufs = json::object();
    for (int side = 0; side < 2; ++side)
        if (s.mbufs[side].present)
            mbufs[kSideNames[side]] = {{"in_use", s.mbufs[side].in_use},
                                       {"size", s.mbufs[side].size}};
    j["mbufs"] = std::move(mbufs);

    j["fragments"] = {{"received", t.engine.fragments},
                      {"held", t.engine.fragments_held},
                      {"datagrams_evicted", t.engine.fragment_datagrams_evicted},
                      {"datagrams_tracked", t.engine.fragment_datagrams},
                      {"waiting", t.engine.fragments_waiting}};
    j["events"] = {{"logged", s.events.logged}, {"lost", s.events.lost}};
    return j;
}

}  // namespace snatgw
