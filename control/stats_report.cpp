// Counter report; see stats_report.h.
#include "stats_report.h"

#include <cstdio>

#include "config_builder.h"

namespace snatgw {

namespace {

void line(std::string& out, const char* fmt, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), fmt, args...);
    out += buf;
}

using ull = unsigned long long;

void worker_line(std::string& out, const std::string& name, const WorkerStats& w,
                 uint64_t tsc_hz) {
    const WorkerCounters& e = w.engine;
    const LoopCounters& l = w.loop;
    line(out,
         "%-9s rx_in=%llu rx_out=%llu tx_in=%llu tx_out=%llu found=%llu new=%llu "
         "translated=%llu handoffs=%llu handoff_ring_full=%llu insert_failed=%llu "
         "drop=%llu sessions=%llu expired=%llu evicted=%llu reopened=%llu capacity=%llu "
         "flushed=%llu reclaimed=%llu pairs_reused_timewait=%llu pairs_reuse_refused=%llu "
         "rst_ignored=%llu passes=%llu poll_gap_max_us=%.1f worker_fatal=%llu\n",
         name.c_str(), ull(l.rx[0]), ull(l.rx[1]), ull(l.tx[0]), ull(l.tx[1]), ull(e.found),
         ull(e.sessions_created), ull(e.forwarded[0] + e.forwarded[1]), ull(l.handoff_sent),
         ull(l.handoff_ring_full), ull(e.insert_failed), ull(e.drop_total()), ull(w.sessions),
         ull(e.sessions_expired), ull(e.sessions_evicted), ull(e.sessions_reopened),
         ull(w.session_capacity), ull(e.sessions_flushed), ull(e.sessions_reclaimed),
         ull(e.pairs_reused_timewait), ull(e.pairs_reuse_refused), ull(e.tcp_rst_ignored),
         ull(loop_passes(w.timing)), cycles_to_seconds(w.timing.poll_gap_max_cycles, tsc_hz) * 1e6,
         ull(l.worker_fatal));
}

}  // namespace

std::string format_stats(const StatsSnapshot& s) {
    std::string out;
    line(out, "steering: %s\n", s.steering.describe().c_str());
    for (const WorkerStats& w : s.workers)
        worker_line(out, "worker " + std::to_string(w.id), w, s.tsc_hz);
    const WorkerStats t = s.total();
    worker_line(out, "total", t, s.tsc_hz);
    const WorkerCounters& te = t.engine;
    const LoopCounters& tl = t.loop;

    out += "drops:";
    bool any = false;
    for (std::size_t i = 0; i < te.drops.size(); ++i) {
        if (te.drops[i] == 0) continue;
        line(out, " %s=%llu", std::string(kDropReasonNames[i]).c_str(), ull(te.drops[i]));
        any = true;
    }
    out += any ? "\n" : " none\n";

    out += "sessions:";
    for (std::size_t i = 1; i < te.tcp_state.size(); ++i)
        if (te.tcp_state[i] != 0)
            line(out, " tcp_%s=%llu", tcp_state_name(static_cast<TcpState>(i)),
                 ull(te.tcp_state[i]));
    line(out, " udp=%llu icmp=%llu\n", ull(te.udp_sessions), ull(te.icmp_sessions));

    line(out,
         "loop: tx_dropped_in=%llu tx_dropped_out=%llu punted=%llu punt_ring_full=%llu "
         "no_route=%llu unmatched_forwarded=%llu multi_segment=%llu idle_sleeps=%llu "
         "handoff_received=%llu control_tx=%llu handoff_deferred=%llu rx_paused=%llu "
         "foreign_mac=%llu not_forwarded=%llu\n",
         ull(tl.tx_dropped[0]), ull(tl.tx_dropped[1]), ull(tl.punted), ull(tl.punt_ring_full),
         ull(tl.no_route), ull(tl.unmatched_forwarded), ull(tl.multi_segment),
         ull(tl.idle_sleeps), ull(tl.handoff_received), ull(tl.control_tx),
         ull(tl.handoff_deferred), ull(tl.rx_paused), ull(tl.foreign_mac), ull(tl.not_forwarded));

    // Loop timing, all workers: passes (their mean work time), the longest gap between two RX
    // polls of any worker, and the pass time histogram (non-empty buckets, "<N" microseconds).
    const uint64_t passes = loop_passes(t.timing);
    line(out, "loop_time: passes=%llu pass_avg_us=%.2f poll_gap_max_us=%.1f worker_fatal=%llu\n",
         ull(passes),
         passes == 0 ? 0.0 : cycles_to_seconds(t.timing.pass_cycles, s.tsc_hz) * 1e6 / double(passes),
         cycles_to_seconds(t.timing.poll_gap_max_cycles, s.tsc_hz) * 1e6, ull(tl.worker_fatal));
    out += "loop_pass_us:";
    for (std::size_t k = 0; k < LoopTiming::kBuckets; ++k) {
        if (t.timing.pass[k] == 0) continue;
        if (k + 1 < LoopTiming::kBuckets)
            line(out, " <%llu=%llu", ull(LoopTiming::bound_us(k)), ull(t.timing.pass[k]));
        else
            line(out, " >=%llu=%llu", ull(LoopTiming::bound_us(k - 1)), ull(t.timing.pass[k]));
    }
    out += passes == 0 ? " none\n" : "\n";

    const ControlCounters& c = s.control;
    line(out,
         "control: arp_answered=%llu arp_learned=%llu arp_requests=%llu echo_replies=%llu "
         "time_exceeded=%llu icmp_rate_limited=%llu local_dropped=%llu held=%llu "
         "released=%llu hold_dropped=%llu arp_ignored=%llu alloc_failed=%llu "
         "control_ring_full=%llu hold_full=%llu hold_timeout=%llu resolved_at_punt=%llu "
         "neighbour_evicted=%llu neighbour_expired=%llu neighbour_pending_refused=%llu "
         "neighbour_table_full=%llu arp_unsolicited_ignored=%llu\n",
         ull(c.arp_requests_answered), ull(c.arp_learned), ull(c.arp_requests_sent),
         ull(c.echo_replies), ull(c.time_exceeded_sent), ull(c.icmp_rate_limited),
         ull(c.local_dropped), ull(c.held), ull(c.released), ull(c.hold_dropped),
         ull(c.arp_ignored), ull(c.alloc_failed), ull(c.control_ring_full), ull(c.hold_full),
         ull(c.hold_timeout), ull(c.resolved_at_punt), ull(c.neighbour_evicted),
         ull(c.neighbour_expired), ull(c.neighbour_pending_refused), ull(c.neighbour_table_full),
         ull(c.arp_unsolicited_ignored));

    for (int side = 0; side < 2; ++side) {
        const EthPortStats& p = s.ports[side];
        if (!p.present) continue;
        line(out,
             "port %s: rx=%llu missed=%llu rx_errors=%llu rx_nombuf=%llu tx=%llu "
             "tx_errors=%llu\n",
             kSideNames[side], ull(p.rx), ull(p.missed), ull(p.rx_errors), ull(p.rx_nombuf),
             ull(p.tx), ull(p.tx_errors));
    }

    for (int side = 0; side < 2; ++side)
        if (s.mbufs[side].present)
            line(out, "mbufs %s: in_use=%llu size=%llu\n", kSideNames[side],
                 ull(s.mbufs[side].in_use), ull(s.mbufs[side].size));
    line(out,
         "fragments: received=%llu held=%llu datagrams_evicted=%llu datagrams_tracked=%llu "
         "waiting=%llu\n",
         ull(te.fragments), ull(te.fragments_held), ull(te.fragment_datagrams_evicted),
         ull(te.fragment_datagrams), ull(te.fragments_waiting));

    for (const PortUse& u : s.ports_in_use)
        line(out, "ports_in_use: pool=%s address=%s tcp=%llu udp=%llu icmp=%llu capacity=%llu\n",
             u.pool.c_str(), format_ipv4(u.address).c_str(), ull(u.in_use[0]),
             ull(u.in_use[1]), ull(u.in_use[2]), ull(u.capacity_per_protocol));

    line(out, "events: logged=%llu lost=%llu uptime_s=%.1f\n", ull(s.events.logged),
         ull(s.events.lost), s.uptime_s);
    return out;
}

}  // namespace snatgw
