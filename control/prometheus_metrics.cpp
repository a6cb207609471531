// Prometheus text exposition; see prometheus_metrics.h.
#include "prometheus_metrics.h"

#include <charconv>
#include <initializer_list>
#include <utility>

#include "config_builder.h"

namespace snatgw {

std::string prometheus_escape_label(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

std::string prometheus_escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (char c : help) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

namespace {

using Label = std::pair<std::string_view, std::string_view>;

// Writes one family header, then its samples; the format requires a family's samples to be
// contiguous and after its # TYPE line.
class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}

    void family(std::string_view name, std::string_view type, std::string_view help) {
        name_ = name;
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += prometheus_escape_help(help);
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // A sample of the current family under a suffixed name (a histogram's _bucket, _sum, _count).
    void sample_as(std::string_view suffix, std::initializer_list<Label> labels, uint64_t v) {
        suffix_ = suffix;
        sample(labels, v);
        suffix_ = {};
    }
    void sample_as(std::string_view suffix, std::initializer_list<Label> labels, double v) {
        suffix_ = suffix;
        sample(labels, v);
        suffix_ = {};
    }

    void sample(std::initializer_list<Label> labels, uint64_t v) {
        begin(labels);
        out_ += std::to_string(v);
        out_ += '\n';
    }
    void sample(std::initializer_list<Label> labels, double v) {
        begin(labels);
        char buf[64];
        const auto r = std::to_chars(buf, buf + sizeof(buf), v);
        out_.append(buf, r.ptr);
        out_ += '\n';
    }

private:
    void begin(std::initializer_list<Label> labels) {
        out_ += name_;
        out_ += suffix_;
        if (labels.size() != 0) {
            out_ += '{';
            bool first = true;
            for (const Label& l : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += l.first;
                out_ += "=\"";
                out_ += prometheus_escape_label(l.second);
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
    }

    std::string& out_;
    std::string_view name_;
    std::string_view suffix_;
};

// A double as the text format writes it (shortest round trip: 1e-06, 0.016384).
std::string number_text(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, r.ptr);
}

// Per-worker families with only the worker label.
struct WorkerFamily {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const WorkerStats&);
};

constexpr WorkerFamily kWorkerFamilies[] = {
    {"snatgw_sessions_active", "gauge", "Live sessions in the worker's session table.",
     [](const WorkerStats& w) { return w.sessions; }},
    {"snatgw_session_table_capacity", "gauge", "Size of the worker's session table.",
     [](const WorkerStats& w) { return w.session_capacity; }},
    {"snatgw_session_hits_total", "counter", "Session lookups that found a session.",
     [](const WorkerStats& w) { return w.engine.found; }},
    {"snatgw_sessions_created_total", "counter", "Sessions created.",
     [](const WorkerStats& w) { return w.engine.sessions_created; }},
    {"snatgw_sessions_reopened_total", "counter",
     "New SYNs that reused a TIME_WAIT, CLOSED or expired session.",
     [](const WorkerStats& w) { return w.engine.sessions_reopened; }},
    {"snatgw_sessions_expired_total", "counter", "Sessions that reached their idle timeout.",
     [](const WorkerStats& w) { return w.engine.sessions_expired; }},
    {"snatgw_sessions_freed_total", "counter",
     "Sessions removed from the table (their public port returned).",
     [](const WorkerStats& w) { return w.engine.sessions_freed; }},
    {"snatgw_sessions_evicted_total", "counter",
     "Sessions dropped early to make room in a full table.",
     [](const WorkerStats& w) { return w.engine.sessions_evicted; }},
    {"snatgw_sessions_flushed_total", "counter", "Sessions ended by an operator (flush).",
     [](const WorkerStats& w) { return w.engine.sessions_flushed; }},
    {"snatgw_sessions_reclaimed_total", "counter",
     "Never-established TCP sessions freed for a new one (the host's handshake cap, or no pair left).",
     [](const WorkerStats& w) { return w.engine.sessions_reclaimed; }},
    {"snatgw_pairs_reused_timewait_total", "counter",
     "Pairs held for a remote's TIME_WAIT given to a new SYN the remote accepts (RFC 6191).",
     [](const WorkerStats& w) { return w.engine.pairs_reused_timewait; }},
    {"snatgw_pairs_reuse_refused_total", "counter",
     "SYNs that found held pairs toward their remote, none of which the remote would accept.",
     [](const WorkerStats& w) { return w.engine.pairs_reuse_refused; }},
    {"snatgw_tcp_rst_ignored_total", "counter",
     "Out-of-window RSTs forwarded without ending the session (liberal policy).",
     [](const WorkerStats& w) { return w.engine.tcp_rst_ignored; }},
    {"snatgw_pair_count_failed_total", "counter",
     "Pair-count table refusals (should stay 0).",
     [](const WorkerStats& w) { return w.engine.pair_count_failed; }},
    {"snatgw_fragments_total", "counter", "IPv4 fragments given to the worker's engine.",
     [](const WorkerStats& w) { return w.engine.fragments; }},
    {"snatgw_fragments_held_total", "counter",
     "Fragments that waited for the first fragment of their datagram.",
     [](const WorkerStats& w) { return w.engine.fragments_held; }},
    {"snatgw_fragment_datagrams_evicted_total", "counter",
     "Fragmented datagrams whose state was dropped to make room.",
     [](const WorkerStats& w) { return w.engine.fragment_datagrams_evicted; }},
    {"snatgw_fragment_datagrams", "gauge", "Fragmented datagrams being tracked.",
     [](const WorkerStats& w) { return w.engine.fragment_datagrams; }},
    {"snatgw_fragments_waiting", "gauge", "Fragments held, waiting for their datagram's first.",
     [](const WorkerStats& w) { return w.engine.fragments_waiting; }},
    {"snatgw_insert_failed_total", "counter", "Session inserts the hash refused while it had room.",
     [](const WorkerStats& w) { return w.engine.insert_failed; }},
    {"snatgw_worker_drops_total", "counter", "Packets the worker's engine dropped, any reason.",
     [](const WorkerStats& w) { return w.engine.drop_total(); }},
    {"snatgw_handoffs_total", "counter", "Packets handed to the worker that owns their session.",
     [](const WorkerStats& w) { return w.loop.handoff_sent; }},
    {"snatgw_handoffs_received_total", "counter", "Packets received from other workers.",
     [](const WorkerStats& w) { return w.loop.handoff_received; }},
    {"snatgw_handoff_ring_full_total", "counter",
     "Packets dropped because the owner's handoff ring was full.",
     [](const WorkerStats& w) { return w.loop.handoff_ring_full; }},
    {"snatgw_handoff_deferred_total", "counter",
     "Handoffs that waited in the worker's backlog for room in the owner's ring.",
     [](const WorkerStats& w) { return w.loop.handoff_deferred; }},
    {"snatgw_rx_paused_total", "counter",
     "Loop passes that skipped RX because the handoff backlog was congested.",
     [](const WorkerStats& w) { return w.loop.rx_paused; }},
    {"snatgw_punted_total", "counter", "Frames passed to the control lcore (ARP, local, TTL).",
     [](const WorkerStats& w) { return w.loop.punted; }},
    {"snatgw_punt_ring_full_total", "counter",
     "Frames dropped because the control lcore's ring was full.",
     [](const WorkerStats& w) { return w.loop.punt_ring_full; }},
    {"snatgw_no_route_total", "counter", "Packets dropped for want of a route.",
     [](const WorkerStats& w) { return w.loop.no_route; }},
    {"snatgw_unmatched_forwarded_total", "counter",
     "Packets matching no NAT rule forwarded untranslated (forward_unmatched).",
     [](const WorkerStats& w) { return w.loop.unmatched_forwarded; }},
    {"snatgw_multi_segment_total", "counter", "Frames dropped because they span several mbufs.",
     [](const WorkerStats& w) { return w.loop.multi_segment; }},
    {"snatgw_foreign_mac_total", "counter",
     "Frames dropped because they were not sent to the gateway's MAC (and were not ARP).",
     [](const WorkerStats& w) { return w.loop.foreign_mac; }},
    {"snatgw_not_forwarded_total", "counter",
     "Packets dropped because a router must not forward their destination (multicast, "
     "broadcast, the inside subnet, 0/8, 127/8, 240/4).",
     [](const WorkerStats& w) { return w.loop.not_forwarded; }},
    {"snatgw_idle_sleeps_total", "counter", "Times the worker slept after idle polls.",
     [](const WorkerStats& w) { return w.loop.idle_sleeps; }},
    {"snatgw_control_tx_total", "counter", "Frames the worker sent for the control lcore.",
     [](const WorkerStats& w) { return w.loop.control_tx; }},
    {"snatgw_worker_fatal_total", "counter",
     "Times the worker's loop ended on an error (the daemon then stops; should stay 0).",
     [](const WorkerStats& w) { return w.loop.worker_fatal; }},
};

struct ControlFamily {
    const char* name;
    const char* help;
    uint64_t ControlCounters::*field;
};

constexpr ControlFamily kControlFamilies[] = {
    {"snatgw_control_arp_requests_answered_total", "ARP requests for our addresses answered.",
     &ControlCounters::arp_requests_answered},
    {"snatgw_control_arp_learned_total", "Neighbours learned or refreshed from ARP.",
     &ControlCounters::arp_learned},
    {"snatgw_control_arp_requests_sent_total", "ARP requests sent to resolve next hops.",
     &ControlCounters::arp_requests_sent},
    {"snatgw_control_arp_ignored_total", "ARP frames ignored (not for us, malformed).",
     &ControlCounters::arp_ignored},
    {"snatgw_control_echo_replies_total", "ICMP echo replies sent from the gateway's addresses.",
     &ControlCounters::echo_replies},
    {"snatgw_control_local_dropped_total", "Other traffic to the gateway's addresses, dropped.",
     &ControlCounters::local_dropped},
    {"snatgw_control_time_exceeded_sent_total", "ICMP time exceeded messages sent.",
     &ControlCounters::time_exceeded_sent},
    {"snatgw_control_icmp_rate_limited_total", "ICMP errors not sent because of the rate limit.",
     &ControlCounters::icmp_rate_limited},
    {"snatgw_control_held_total", "Frames held while their next hop resolves.",
     &ControlCounters::held},
    {"snatgw_control_hold_dropped_total",
     "Held frames dropped (hold queue full, or next hop not resolved in time).",
     &ControlCounters::hold_dropped},
    {"snatgw_control_hold_full_total",
     "Frames dropped because the hold queue was full (per next hop, or the global cap).",
     &ControlCounters::hold_full},
    {"snatgw_control_hold_timeout_total",
     "Held frames dropped because their next hop did not resolve in time.",
     &ControlCounters::hold_timeout},
    {"snatgw_control_released_total", "Held frames sent once their next hop resolved.",
     &ControlCounters::released},
    {"snatgw_control_resolved_at_punt_total",
     "Frames punted for an unknown next hop that had resolved meanwhile, sent at once.",
     &ControlCounters::resolved_at_punt},
    {"snatgw_control_alloc_failed_total", "Frames the control lcore could not allocate.",
     &ControlCounters::alloc_failed},
    {"snatgw_control_ring_full_total", "Frames dropped because worker 0's control ring was full.",
     &ControlCounters::control_ring_full},
    {"snatgw_control_neighbour_evicted_total",
     "Neighbour entries evicted (least recently used) to make room for a new one.",
     &ControlCounters::neighbour_evicted},
    {"snatgw_control_neighbour_expired_total",
     "Neighbour entries reclaimed: unused for 60 s, or unresolved and no longer asked about.",
     &ControlCounters::neighbour_expired},
    {"snatgw_control_neighbour_pending_refused_total",
     "Frames dropped because their source already had its share of pending neighbours.",
     &ControlCounters::neighbour_pending_refused},
    {"snatgw_control_neighbour_table_full_total",
     "Neighbours not added because no slot of the table could be had.",
     &ControlCounters::neighbour_table_full},
    {"snatgw_control_arp_unsolicited_ignored_total",
     "Unsolicited ARP not learnt (table 3/4 full, or a pinned next hop claimed by another MAC).",
     &ControlCounters::arp_unsolicited_ignored},
};

struct PortFamily {
    const char* name;
    const char* help;
    uint64_t EthPortStats::*field;
};

constexpr PortFamily kPortFamilies[] = {
    {"snatgw_port_missed_total", "Frames the port dropped because its RX queues were full.",
     &EthPortStats::missed},
    {"snatgw_port_rx_errors_total", "Erroneous frames the port received.",
     &EthPortStats::rx_errors},
    {"snatgw_port_rx_nombuf_total", "RX mbuf allocation failures of the port.",
     &EthPortStats::rx_nombuf},
    {"snatgw_port_tx_errors_total", "Frames the port failed to transmit.",
     &EthPortStats::tx_errors},
};

const char* kDirections[2] = {"rx", "tx"};

}  // namespace

std::string prometheus_text(const StatsSnapshot& s) {
    std::string out;
    out.reserve(16384);
    Writer w(out);

    w.family("snatgw_uptime_seconds", "gauge", "Seconds since the gateway started.");
    w.sample({}, s.uptime_s);
    w.family("snatgw_steering_info", "gauge",
             "How packets reach the worker owning their session (value always 1).");
    w.sample({{"inside", inside_steering_name(s.steering.inside)},
              {"outside", outside_steering_name(s.steering.outside)}},
             uint64_t{1});
    w.family("snatgw_workers", "gauge", "Worker lcores.");
    w.sample({}, static_cast<uint64_t>(s.workers.size()));

    std::vector<std::string> ids;
    for (const WorkerStats& ws : s.workers) ids.push_back(std::to_string(ws.id));

    w.family("snatgw_packets_total", "counter",
             "Packets the workers received (rx) and sent (tx), by port.");
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        for (int side = 0; side < 2; ++side) {
            w.sample({{"worker", ids[i]}, {"port", kSideNames[side]}, {"direction", "rx"}},
                     s.workers[i].loop.rx[side]);
            w.sample({{"worker", ids[i]}, {"port", kSideNames[side]}, {"direction", "tx"}},
                     s.workers[i].loop.tx[side]);
        }
    w.family("snatgw_translated_total", "counter",
             "Packets translated and forwarded, by the port they arrived on.");
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        for (int side = 0; side < 2; ++side)
            w.sample({{"worker", ids[i]}, {"port", kSideNames[side]}},
                     s.workers[i].engine.forwarded[side]);
    w.family("snatgw_tx_dropped_total", "counter",
             "Packets dropped because the port's TX queue was full.");
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        for (int side = 0; side < 2; ++side)
            w.sample({{"worker", ids[i]}, {"port", kSideNames[side]}},
                     s.workers[i].loop.tx_dropped[side]);
    for (const WorkerFamily& f : kWorkerFamilies) {
        w.family(f.name, f.type, f.help);
        for (std::size_t i = 0; i < s.workers.size(); ++i)
            w.sample({{"worker", ids[i]}}, f.get(s.workers[i]));
    }

    // Loop timing: a histogram of pass durations (the buckets' bounds are powers of two in
    // microseconds; a pass counts in the first bucket whose bound it is below), and the longest
    // gap between two RX polls.
    std::vector<std::string> le;
    for (std::size_t k = 0; k + 1 < LoopTiming::kBuckets; ++k)
        le.push_back(number_text(static_cast<double>(LoopTiming::bound_us(k)) / 1e6));
    le.push_back("+Inf");
    w.family("snatgw_worker_loop_pass_seconds", "histogram",
             "Durations of the worker's loop passes (the work of a pass, without its idle sleep).");
    for (std::size_t i = 0; i < s.workers.size(); ++i) {
        const LoopTiming& lt = s.workers[i].timing;
        uint64_t cumulative = 0;
        for (std::size_t k = 0; k < LoopTiming::kBuckets; ++k) {
            cumulative += lt.pass[k];
            w.sample_as("_bucket", {{"worker", ids[i]}, {"le", le[k]}}, cumulative);
        }
        w.sample_as("_sum", {{"worker", ids[i]}}, cycles_to_seconds(lt.pass_cycles, s.tsc_hz));
        w.sample_as("_count", {{"worker", ids[i]}}, cumulative);
    }
    w.family("snatgw_worker_poll_gap_max_seconds", "gauge",
             "Longest time between two RX polls of the worker since it started (idle sleeps "
             "included).");
    for (std::size_t i = 0; i < s.workers.size(); ++i)
        w.sample({{"worker", ids[i]}},
                 cycles_to_seconds(s.workers[i].timing.poll_gap_max_cycles, s.tsc_hz));

    const WorkerStats t = s.total();
    w.family("snatgw_drops_total", "counter",
             "Packets the NAT engines dropped, by reason (dataplane/drop_reasons.h).");
    for (std::size_t i = 0; i < kDropReasonCount; ++i)
        w.sample({{"reason", kDropReasonNames[i]}}, t.engine.drops[i]);

    w.family("snatgw_sessions", "gauge", "Live sessions by protocol and TCP state.");
    for (std::size_t i = 1; i < t.engine.tcp_state.size(); ++i)  // 1: skip None (not TCP)
        w.sample({{"proto", "tcp"}, {"state", tcp_state_name(static_cast<TcpState>(i))}},
                 t.engine.tcp_state[i]);
    w.sample({{"proto", "udp"}, {"state", "active"}}, t.engine.udp_sessions);
    w.sample({{"proto", "icmp"}, {"state", "active"}}, t.engine.icmp_sessions);

    std::vector<std::string> addresses;
    for (const PortUse& u : s.ports_in_use) addresses.push_back(format_ipv4(u.address));
    w.family("snatgw_ports_in_use", "gauge",
             "Public ports of a pool address carrying at least one session.");
    for (std::size_t i = 0; i < s.ports_in_use.size(); ++i)
        for (std::size_t sp = 0; sp < kPortSpaces; ++sp)
            w.sample({{"pool", s.ports_in_use[i].pool},
                      {"address", addresses[i]},
                      {"proto", kPortSpaceNames[sp]}},
                     s.ports_in_use[i].in_use[sp]);
    w.family("snatgw_port_capacity", "gauge",
             "Public ports of a pool address the workers can allocate, per protocol.");
    for (std::size_t i = 0; i < s.ports_in_use.size(); ++i)
        for (std::size_t sp = 0; sp < kPortSpaces; ++sp)
            w.sample({{"pool", s.ports_in_use[i].pool},
                      {"address", addresses[i]},
                      {"proto", kPortSpaceNames[sp]}},
                     s.ports_in_use[i].capacity_per_protocol);

    for (const ControlFamily& f : kControlFamilies) {
        w.family(f.name, "counter", f.help);
        w.sample({}, s.control.*f.field);
    }

    w.family("snatgw_port_packets_total", "counter",
             "Frames the DPDK port itself received (rx) and sent (tx).");
    for (int side = 0; side < 2; ++side) {
        if (!s.ports[side].present) continue;
        w.sample({{"port", kSideNames[side]}, {"direction", kDirections[0]}}, s.ports[side].rx);
        w.sample({{"port", kSideNames[side]}, {"direction", kDirections[1]}}, s.ports[side].tx);
    }
    for (const PortFamily& f : kPortFamilies) {
        w.family(f.name, "counter", f.help);
        for (int side = 0; side < 2; ++side)
            if (s.ports[side].present) w.sample({{"port", kSideNames[side]}}, s.ports[side].*f.field);
    }

    w.family("snatgw_mbufs_in_use", "gauge",
             "Mbufs of the port's pool that are out (not in the pool or a per-lcore cache).");
    for (int side = 0; side < 2; ++side)
        if (s.mbufs[side].present) w.sample({{"port", kSideNames[side]}}, s.mbufs[side].in_use);
    w.family("snatgw_mbufs", "gauge", "Size of the port's mbuf pool.");
    for (int side = 0; side < 2; ++side)
        if (s.mbufs[side].present) w.sample({{"port", kSideNames[side]}}, s.mbufs[side].size);

    w.family("snatgw_events_logged_total", "counter", "NAT event log records written.");
    w.sample({}, s.events.logged);
    w.family("snatgw_events_lost_total", "counter",
             "NAT event log records lost (the log could not keep up).");
    w.sample({}, s.events.lost);
    return out;
}

}  // namespace snatgw
