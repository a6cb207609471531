// Counter report; see stats_report.h.
#include "stats_report.h"

#include <cstdio>

namespace snatgw {

namespace {

void line(std::string& out, const char* fmt, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), fmt, args...);
    out += buf;
}

using ull = unsigned long long;

}  // namespace

std::string format_stats(const std::vector<WorkerView>& workers, const ControlCounters& c,
                         const SteeringPlan& steering) {
    std::string out;
    line(out, "steering: %s\n", steering.describe().c_str());
    WorkerCounters te;
    LoopCounters tl;
    uint64_t sessions = 0;
    for (std::size_t w = 0; w <= workers.size(); ++w) {
        const bool total = w == workers.size();
        const WorkerCounters& e = total ? te : *workers[w].engine;
        const LoopCounters& l = total ? tl : *workers[w].loop;
        const uint64_t live = total ? sessions : workers[w].sessions;
        line(out,
             "%-9s rx_in=%llu rx_out=%llu tx_in=%llu tx_out=%llu found=%llu new=%llu "
             "translated=%llu handoffs=%llu handoff_ring_full=%llu insert_failed=%llu "
             "drop=%llu sessions=%llu expired=%llu evicted=%llu\n",
             total ? "total" : ("worker " + std::to_string(w)).c_str(), ull(l.rx[0]),
             ull(l.rx[1]), ull(l.tx[0]), ull(l.tx[1]), ull(e.found), ull(e.sessions_created),
             ull(e.forwarded[0] + e.forwarded[1]), ull(l.handoff_sent), ull(l.handoff_ring_full),
             ull(e.insert_failed), ull(e.drop_total()), ull(live), ull(e.sessions_expired),
             ull(e.sessions_evicted));
        if (total) break;
        // Accumulate the total.
        te.found += e.found;
        te.sessions_created += e.sessions_created;
        te.forwarded[0] += e.forwarded[0];
        te.forwarded[1] += e.forwarded[1];
        te.insert_failed += e.insert_failed;
        te.sessions_expired += e.sessions_expired;
        te.sessions_evicted += e.sessions_evicted;
        te.udp_sessions += e.udp_sessions;
        te.icmp_sessions += e.icmp_sessions;
        for (std::size_t i = 0; i < te.drops.size(); ++i) te.drops[i] += e.drops[i];
        for (std::size_t i = 0; i < te.tcp_state.size(); ++i) te.tcp_state[i] += e.tcp_state[i];
        for (int s = 0; s < 2; ++s) {
            tl.rx[s] += l.rx[s];
            tl.tx[s] += l.tx[s];
            tl.tx_dropped[s] += l.tx_dropped[s];
        }
        tl.handoff_sent += l.handoff_sent;
        tl.handoff_ring_full += l.handoff_ring_full;
        tl.punted += l.punted;
        tl.punt_ring_full += l.punt_ring_full;
        tl.no_route += l.no_route;
        tl.unmatched_forwarded += l.unmatched_forwarded;
        tl.multi_segment += l.multi_segment;
        tl.idle_sleeps += l.idle_sleeps;
        sessions += live;
    }
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
            line(out, " tcp_%s=%llu", tcp_state_name(static_cast<TcpState>(i)), ull(te.tcp_state[i]));
    line(out, " udp=%llu icmp=%llu\n", ull(te.udp_sessions), ull(te.icmp_sessions));
    line(out,
         "loop: tx_dropped_in=%llu tx_dropped_out=%llu punted=%llu punt_ring_full=%llu "
         "no_route=%llu unmatched_forwarded=%llu multi_segment=%llu idle_sleeps=%llu\n",
         ull(tl.tx_dropped[0]), ull(tl.tx_dropped[1]), ull(tl.punted), ull(tl.punt_ring_full),
         ull(tl.no_route), ull(tl.unmatched_forwarded), ull(tl.multi_segment),
         ull(tl.idle_sleeps));
    line(out,
         "control: arp_answered=%llu arp_learned=%llu arp_requests=%llu echo_replies=%llu "
         "time_exceeded=%llu icmp_rate_limited=%llu local_dropped=%llu held=%llu "
         "released=%llu hold_dropped=%llu\n",
         ull(c.arp_requests_answered), ull(c.arp_learned), ull(c.arp_requests_sent),
         ull(c.echo_replies), ull(c.time_exceeded_sent), ull(c.icmp_rate_limited),
         ull(c.local_dropped), ull(c.held), ull(c.released), ull(c.hold_dropped));
    return out;
}

}  // namespace snatgw
