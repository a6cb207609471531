// The counters' renderings: a snapshot built by hand with known numbers, rendered as the stats
// JSON, the text report, Prometheus text (checked by promtool when it is installed), DPDK
// telemetry dicts; the /metrics HTTP server on 127.0.0.1; and collect_stats() over real engines.
#include <gtest/gtest.h>
#include <httplib.h>
#include <rte_mbuf.h>
#include <rte_telemetry.h>

#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "metrics_server.h"
#include "nat_fixture.h"
#include "prometheus_metrics.h"
#include "stats_report.h"
#include "stats_snapshot.h"
#include "telemetry.h"

namespace snatgw {
namespace {

using nlohmann::json;
using test::ip;

std::size_t drop_index(DropReason r) { return static_cast<std::size_t>(r); }
std::size_t state_index(TcpState s) { return static_cast<std::size_t>(s); }

// Two workers whose every counter is distinct, so a swapped or missed field shows.
StatsSnapshot sample_snapshot() {
    StatsSnapshot s;
    s.uptime_s = 12.5;
    s.tsc_hz = 1'000'000'000;
    s.steering.inside = InsideSteering::Software;
    s.steering.outside = OutsideSteering::Flow;
    for (uint16_t id = 0; id < 2; ++id) {
        const uint64_t k = id + 1;  // worker 0: x1, worker 1: x2
        WorkerStats w;
        w.id = id;
        w.loop.rx[0] = 100 * k;
        w.loop.rx[1] = 90 * k;
        w.loop.tx[0] = 80 * k;
        w.loop.tx[1] = 70 * k;
        w.loop.tx_dropped[0] = 1 * k;
        w.loop.tx_dropped[1] = 2 * k;
        w.loop.handoff_sent = 3 * k;
        w.loop.handoff_received = 4 * k;
        w.loop.handoff_ring_full = 5 * k;
        w.loop.punted = 6 * k;
        w.loop.punt_ring_full = 7 * k;
        w.loop.no_route = 8 * k;
        w.loop.unmatched_forwarded = 9 * k;
        w.loop.multi_segment = 10 * k;
        w.loop.idle_sleeps = 11 * k;
        w.loop.control_tx = 12 * k;
        w.loop.handoff_deferred = 13 * k;
        w.loop.rx_paused = 14 * k;
        w.loop.worker_fatal = k - 1;  // worker 1 failed once
        // Loop timing at 1 GHz: passes < 1 us, [1, 2) us, [4, 8) us and >= 16384 us; 1 s of
        // pass time per k; the longest poll gap 2.5 ms per k.
        w.timing.pass[0] = 10 * k;
        w.timing.pass[1] = 5 * k;
        w.timing.pass[3] = 2 * k;
        w.timing.pass[15] = 1 * k;
        w.timing.pass_cycles = 1'000'000'000 * k;
        w.timing.poll_gap_max_cycles = 2'500'000 * k;
        w.engine.forwarded[0] = 60 * k;
        w.engine.forwarded[1] = 50 * k;
        w.engine.found = 40 * k;
        w.engine.sessions_created = 20 * k;
        w.engine.sessions_reopened = 2 * k;
        w.engine.sessions_expired = 7 * k;
        w.engine.sessions_evicted = 1 * k;
        w.engine.sessions_flushed = 8 * k;
        w.engine.insert_failed = 3 * k;
        w.engine.drops[drop_index(DropReason::NoSession)] = 5 * k;
        w.engine.drops[drop_index(DropReason::TcpOutOfWindow)] = 4 * k;
        w.engine.tcp_state[state_index(TcpState::Established)] = 6 * k;
        w.engine.tcp_state[state_index(TcpState::TimeWait)] = 2 * k;
        w.engine.udp_sessions = 3 * k;
        w.engine.icmp_sessions = 1 * k;
        w.engine.fragments = 15 * k;
        w.engine.fragments_held = 5 * k;
        w.engine.fragment_datagrams_evicted = 1 * k;
        w.engine.fragment_datagrams = 2 * k;
        w.engine.fragments_waiting = 3 * k;
        w.sessions = 12 * k;
        w.session_capacity = 4096;
        s.workers.push_back(w);
    }
    s.control.arp_requests_answered = 31;
    s.control.arp_learned = 32;
    s.control.arp_requests_sent = 33;
    s.control.arp_ignored = 34;
    s.control.echo_replies = 35;
    s.control.local_dropped = 36;
    s.control.time_exceeded_sent = 37;
    s.control.icmp_rate_limited = 38;
    s.control.held = 39;
    s.control.hold_dropped = 40;
    s.control.released = 41;
    s.control.alloc_failed = 42;
    s.control.control_ring_full = 43;
    s.control.hold_full = 44;
    s.control.hold_timeout = 45;
    s.control.resolved_at_punt = 46;
    s.ports[0] = {true, 1000, 900, 7, 1, 2, 3};
    s.ports[1] = {true, 2000, 1900, 17, 11, 12, 13};
    PortUse a;
    a.pool = "lab";
    a.address = ip("198.19.0.10");
    a.in_use[0] = 9;
    a.in_use[1] = 4;
    a.in_use[2] = 1;
    a.capacity_per_protocol = 64512;
    s.ports_in_use.push_back(a);
    PortUse b = a;
    b.address = ip("198.19.0.11");
    b.in_use[0] = 2;
    b.in_use[1] = 0;
    b.in_use[2] = 0;
    s.ports_in_use.push_back(b);
    s.mbufs[0] = {true, 300, 16384};
    s.mbufs[1] = {true, 420, 16384};
    s.events = {77, 3};
    return s;
}

std::set<std::string> keys_of(const json& o) {
    std::set<std::string> k;
    for (const auto& [key, v] : o.items()) k.insert(key);
    return k;
}

// --- stats JSON -------------------------------------------------------------------------------

TEST(StatsJson, HasTheDocumentedShape) {
    const json j = stats_to_json(sample_snapshot());
    EXPECT_EQ(keys_of(j), (std::set<std::string>{"uptime_s", "steering", "workers", "total",
                                                  "drops", "sessions_by_state", "ports_in_use",
                                                  "loop", "control", "ports", "mbufs",
                                                  "fragments", "events", "loop_pass_time"}));
    const std::set<std::string> worker_keys = {
        "rx_inside", "rx_outside", "tx_inside", "tx_outside", "found", "new", "reopened",
        "translated", "handoffs", "handoff_ring_full", "insert_failed", "expired", "evicted",
        "flushed", "drops", "sessions", "session_capacity", "reclaimed", "pairs_reused_timewait",
        "pairs_reuse_refused", "tcp_rst_ignored", "pair_count_failed", "worker_fatal",
        "loop_passes", "poll_gap_max_ns"};  // flushed: beyond the doc
    ASSERT_EQ(j["workers"].size(), 2u);
    std::set<std::string> with_id = worker_keys;
    with_id.insert("worker");
    EXPECT_EQ(keys_of(j["workers"][0]), with_id);
    EXPECT_EQ(keys_of(j["total"]), worker_keys);

    std::set<std::string> reasons;
    for (std::string_view r : kDropReasonNames) reasons.insert(std::string(r));
    EXPECT_EQ(keys_of(j["drops"]), reasons);
    EXPECT_EQ(keys_of(j["sessions_by_state"]), (std::set<std::string>{"tcp", "udp", "icmp"}));
    EXPECT_EQ(keys_of(j["sessions_by_state"]["tcp"]),
              (std::set<std::string>{"syn_sent", "syn_recv", "established", "fin_wait",
                                     "close_wait", "last_ack", "time_wait", "closed",
                                     "expired"}));
    EXPECT_EQ(keys_of(j["ports_in_use"][0]),
              (std::set<std::string>{"pool", "address", "tcp", "udp", "icmp",
                                     "per_protocol_capacity"}));
    for (const char* k : {"tx_dropped_inside", "tx_dropped_outside", "punted", "punt_ring_full",
                          "no_route", "unmatched_forwarded", "multi_segment", "idle_sleeps",
                          "handoff_received", "control_tx", "worker_fatal", "passes",
                          "pass_time_ns", "poll_gap_max_ns"})
        EXPECT_TRUE(j["loop"].contains(k)) << k;
    EXPECT_EQ(keys_of(j["loop_pass_time"]), (std::set<std::string>{"bounds_us", "total", "workers"}));
    EXPECT_EQ(j["control"].size(), 21u);  // every ControlCounters field
    EXPECT_EQ(keys_of(j["ports"]), (std::set<std::string>{"inside", "outside"}));
    EXPECT_EQ(keys_of(j["ports"]["inside"]),
              (std::set<std::string>{"rx", "tx", "missed", "rx_errors", "rx_nombuf",
                                     "tx_errors"}));
    EXPECT_EQ(keys_of(j["mbufs"]), (std::set<std::string>{"inside", "outside"}));
    EXPECT_EQ(keys_of(j["mbufs"]["inside"]), (std::set<std::string>{"in_use", "size"}));
    EXPECT_EQ(keys_of(j["fragments"]),
              (std::set<std::string>{"received", "held", "datagrams_evicted", "datagrams_tracked",
                                     "waiting"}));
    EXPECT_EQ(keys_of(j["events"]), (std::set<std::string>{"logged", "lost"}));
}

TEST(StatsJson, CarriesTheValues) {
    const json j = stats_to_json(sample_snapshot());
    EXPECT_DOUBLE_EQ(j["uptime_s"].get<double>(), 12.5);
    EXPECT_EQ(j["steering"], (json{{"inside", "software-handoff"}, {"outside", "rte_flow"}}));

    const json& w1 = j["workers"][1];
    EXPECT_EQ(w1["worker"], 1);
    EXPECT_EQ(w1["rx_inside"], 200);
    EXPECT_EQ(w1["rx_outside"], 180);
    EXPECT_EQ(w1["tx_inside"], 160);
    EXPECT_EQ(w1["tx_outside"], 140);
    EXPECT_EQ(w1["found"], 80);
    EXPECT_EQ(w1["new"], 40);
    EXPECT_EQ(w1["reopened"], 4);
    EXPECT_EQ(w1["translated"], 220);
    EXPECT_EQ(w1["handoffs"], 6);
    EXPECT_EQ(w1["handoff_ring_full"], 10);
    EXPECT_EQ(w1["insert_failed"], 6);
    EXPECT_EQ(w1["expired"], 14);
    EXPECT_EQ(w1["evicted"], 2);
    EXPECT_EQ(w1["flushed"], 16);
    EXPECT_EQ(w1["drops"], 18);
    EXPECT_EQ(w1["sessions"], 24);
    EXPECT_EQ(w1["session_capacity"], 4096);

    const json& t = j["total"];
    EXPECT_EQ(t["rx_inside"], 300);
    EXPECT_EQ(t["translated"], 330);
    EXPECT_EQ(t["drops"], 27);
    EXPECT_EQ(t["sessions"], 36);
    EXPECT_EQ(t["session_capacity"], 8192);

    EXPECT_EQ(j["drops"]["no_session"], 15);
    EXPECT_EQ(j["drops"]["tcp_out_of_window"], 12);
    EXPECT_EQ(j["drops"]["ports_exhausted"], 0);
    EXPECT_EQ(j["sessions_by_state"]["tcp"]["established"], 18);
    EXPECT_EQ(j["sessions_by_state"]["tcp"]["time_wait"], 6);
    EXPECT_EQ(j["sessions_by_state"]["tcp"]["syn_sent"], 0);
    EXPECT_EQ(j["sessions_by_state"]["udp"], 9);
    EXPECT_EQ(j["sessions_by_state"]["icmp"], 3);

    EXPECT_EQ(j["ports_in_use"][0],
              (json{{"pool", "lab"}, {"address", "198.19.0.10"}, {"tcp", 9}, {"udp", 4},
                    {"icmp", 1}, {"per_protocol_capacity", 64512}}));
    EXPECT_EQ(j["ports_in_use"][1]["address"], "198.19.0.11");

    EXPECT_EQ(j["loop"]["tx_dropped_inside"], 3);
    EXPECT_EQ(j["loop"]["tx_dropped_outside"], 6);
    EXPECT_EQ(j["loop"]["handoff_received"], 12);
    EXPECT_EQ(j["loop"]["control_tx"], 36);
    EXPECT_EQ(j["loop"]["idle_sleeps"], 33);
    EXPECT_EQ(j["loop"]["handoff_deferred"], 39);
    EXPECT_EQ(j["loop"]["rx_paused"], 42);

    EXPECT_EQ(j["control"]["arp_requests_answered"], 31);
    EXPECT_EQ(j["control"]["control_ring_full"], 43);
    EXPECT_EQ(j["control"]["hold_full"], 44);
    EXPECT_EQ(j["control"]["hold_timeout"], 45);
    EXPECT_EQ(j["control"]["resolved_at_punt"], 46);
    EXPECT_EQ(j["ports"]["inside"],
              (json{{"rx", 1000}, {"tx", 900}, {"missed", 7}, {"rx_errors", 1},
                    {"rx_nombuf", 2}, {"tx_errors", 3}}));
    EXPECT_EQ(j["ports"]["outside"]["missed"], 17);
    EXPECT_EQ(j["mbufs"]["inside"], (json{{"in_use", 300}, {"size", 16384}}));
    EXPECT_EQ(j["mbufs"]["outside"]["in_use"], 420);
    EXPECT_EQ(j["fragments"], (json{{"received", 45},
                                    {"held", 15},
                                    {"datagrams_evicted", 3},
                                    {"datagrams_tracked", 6},
                                    {"waiting", 9}}));
    EXPECT_EQ(j["events"], (json{{"logged", 77}, {"lost", 3}}));
}

TEST(StatsJson, CarriesTheLoopTiming) {
    const json j = stats_to_json(sample_snapshot());
    EXPECT_EQ(j["workers"][0]["worker_fatal"], 0);
    EXPECT_EQ(j["workers"][1]["worker_fatal"], 1);
    EXPECT_EQ(j["workers"][0]["loop_passes"], 18);
    EXPECT_EQ(j["workers"][1]["poll_gap_max_ns"], 5'000'000);
    EXPECT_EQ(j["total"]["loop_passes"], 54);
    EXPECT_EQ(j["total"]["poll_gap_max_ns"], 5'000'000);  // the longest, not a sum
    EXPECT_EQ(j["total"]["worker_fatal"], 1);
    EXPECT_EQ(j["loop"]["worker_fatal"], 1);
    EXPECT_EQ(j["loop"]["passes"], 54);
    EXPECT_EQ(j["loop"]["pass_time_ns"], 3'000'000'000u);
    EXPECT_EQ(j["loop"]["poll_gap_max_ns"], 5'000'000);
    const json& h = j["loop_pass_time"];
    EXPECT_EQ(h["bounds_us"], (json{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}));
    EXPECT_EQ(h["total"], (json{30, 15, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}));
    ASSERT_EQ(h["workers"].size(), 2u);
    EXPECT_EQ(h["workers"][0], (json{10, 5, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    // Without a TSC frequency the durations read 0 (never a division by zero).
    StatsSnapshot unknown = sample_snapshot();
    unknown.tsc_hz = 0;
    EXPECT_EQ(stats_to_json(unknown)["loop"]["poll_gap_max_ns"], 0);
}

TEST(StatsCycles, ConvertWithoutOverflow) {
    EXPECT_EQ(cycles_to_ns(2'400'000'000, 2'400'000'000), 1'000'000'000u);
    EXPECT_EQ(cycles_to_ns(3, 3'000'000'000), 1u);
    EXPECT_EQ(cycles_to_ns(std::numeric_limits<uint64_t>::max(), 4'000'000'000),
              std::numeric_limits<uint64_t>::max() / 4'000'000'000 * 1'000'000'000 +
                  (std::numeric_limits<uint64_t>::max() % 4'000'000'000) / 4);
    EXPECT_EQ(cycles_to_ns(123, 0), 0u);
    EXPECT_DOUBLE_EQ(cycles_to_seconds(1'500'000'000, 1'000'000'000), 1.5);
    EXPECT_DOUBLE_EQ(cycles_to_seconds(5, 0), 0.0);
}

TEST(StatsJson, LeavesOutAbsentPorts) {
    StatsSnapshot s = sample_snapshot();
    s.ports[1] = {};
    s.mbufs[0] = {};
    const json j = stats_to_json(s);
    EXPECT_TRUE(j["ports"].contains("inside"));
    EXPECT_FALSE(j["ports"].contains("outside"));
    EXPECT_FALSE(j["mbufs"].contains("inside"));
    EXPECT_TRUE(j["mbufs"].contains("outside"));
    EXPECT_EQ(stats_to_json(StatsSnapshot{})["workers"], json::array());
}

// --- text report ------------------------------------------------------------------------------

// The report's lines by their prefix ("worker 0", "total", "drops:", ...).
std::map<std::string, std::string> report_lines(const std::string& text) {
    std::map<std::string, std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_search(line, m, std::regex("^(worker \\d+|total|port \\w+:|\\w+:)")))
            lines[m[1]] += line + "\n";
    }
    return lines;
}

std::string value_of(const std::string& line, const std::string& key) {
    std::smatch m;
    if (!std::regex_search(line, m, std::regex("(^|\\s)" + key + "=(\\S+)"))) return "(absent)";
    return m[2];
}

TEST(StatsReport, KeepsTheLinesScriptsRead) {
    const std::string text = format_stats(sample_snapshot());
    auto lines = report_lines(text);
    EXPECT_EQ(lines["steering:"], "steering: inside: software-handoff, outside: rte_flow\n");

    const std::string& w0 = lines["worker 0"];
    EXPECT_EQ(value_of(w0, "rx_in"), "100");
    EXPECT_EQ(value_of(w0, "rx_out"), "90");
    EXPECT_EQ(value_of(w0, "tx_in"), "80");
    EXPECT_EQ(value_of(w0, "tx_out"), "70");
    EXPECT_EQ(value_of(w0, "found"), "40");
    EXPECT_EQ(value_of(w0, "new"), "20");
    EXPECT_EQ(value_of(w0, "translated"), "110");
    EXPECT_EQ(value_of(w0, "handoffs"), "3");
    EXPECT_EQ(value_of(w0, "handoff_ring_full"), "5");
    EXPECT_EQ(value_of(w0, "insert_failed"), "3");
    EXPECT_EQ(value_of(w0, "drop"), "9");
    EXPECT_EQ(value_of(w0, "sessions"), "12");
    EXPECT_EQ(value_of(w0, "expired"), "7");
    EXPECT_EQ(value_of(w0, "evicted"), "1");
    EXPECT_EQ(value_of(w0, "flushed"), "8");
    // The original keys come first, in their original order.
    EXPECT_EQ(w0.rfind("worker 0  rx_in=100 rx_out=90 tx_in=80 tx_out=70 found=40 new=20 "
                       "translated=110 handoffs=3 handoff_ring_full=5 insert_failed=3 drop=9 "
                       "sessions=12 expired=7 evicted=1",
                       0),
              0u)
        << w0;
    EXPECT_EQ(value_of(lines["worker 1"], "rx_in"), "200");

    const std::string& t = lines["total"];
    EXPECT_EQ(value_of(t, "rx_in"), "300");
    EXPECT_EQ(value_of(t, "drop"), "27");
    EXPECT_EQ(value_of(t, "sessions"), "36");

    EXPECT_EQ(lines["drops:"], "drops: no_session=15 tcp_out_of_window=12\n");
    EXPECT_EQ(lines["sessions:"], "sessions: tcp_established=18 tcp_time_wait=6 udp=9 icmp=3\n");
    const std::string& loop = lines["loop:"];
    EXPECT_EQ(value_of(loop, "tx_dropped_in"), "3");
    EXPECT_EQ(lines["fragments:"],
              "fragments: received=45 held=15 datagrams_evicted=3 datagrams_tracked=6 "
              "waiting=9\n");
    EXPECT_NE(text.find("mbufs inside: in_use=300 size=16384\n"), std::string::npos) << text;
    EXPECT_NE(text.find("mbufs outside: in_use=420 size=16384\n"), std::string::npos) << text;
    EXPECT_EQ(value_of(loop, "tx_dropped_out"), "6");
    EXPECT_EQ(value_of(loop, "punted"), "18");
    EXPECT_EQ(value_of(loop, "no_route"), "24");
    EXPECT_EQ(value_of(loop, "idle_sleeps"), "33");
    EXPECT_EQ(value_of(loop, "handoff_received"), "12");
    EXPECT_EQ(value_of(loop, "control_tx"), "36");
    EXPECT_EQ(value_of(loop, "handoff_deferred"), "39");
    EXPECT_EQ(value_of(loop, "rx_paused"), "42");
    const std::string& control = lines["control:"];
    EXPECT_EQ(value_of(control, "arp_answered"), "31");
    EXPECT_EQ(value_of(control, "arp_requests"), "33");
    EXPECT_EQ(value_of(control, "hold_dropped"), "40");
    EXPECT_EQ(value_of(control, "hold_full"), "44");
    EXPECT_EQ(value_of(control, "hold_timeout"), "45");
    EXPECT_EQ(value_of(control, "resolved_at_punt"), "46");
    EXPECT_EQ(lines["port inside:"],
              "port inside: rx=1000 missed=7 rx_errors=1 rx_nombuf=2 tx=900 tx_errors=3\n");
    EXPECT_EQ(value_of(lines["port outside:"], "missed"), "17");
    EXPECT_NE(text.find("ports_in_use: pool=lab address=198.19.0.10 tcp=9 udp=4 icmp=1 "
                        "capacity=64512\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(value_of(lines["events:"], "logged"), "77");
    EXPECT_EQ(value_of(lines["events:"], "lost"), "3");
}

TEST(StatsReport, ShowsTheLoopTiming) {
    const std::string text = format_stats(sample_snapshot());
    auto lines = report_lines(text);
    EXPECT_EQ(value_of(lines["worker 1"], "passes"), "36");
    EXPECT_EQ(value_of(lines["worker 1"], "poll_gap_max_us"), "5000.0");
    EXPECT_EQ(value_of(lines["worker 1"], "worker_fatal"), "1");
    EXPECT_EQ(value_of(lines["worker 0"], "poll_gap_max_us"), "2500.0");
    EXPECT_EQ(value_of(lines["total"], "poll_gap_max_us"), "5000.0");
    // 3 s of pass time over 54 passes.
    EXPECT_EQ(lines["loop_time:"],
              "loop_time: passes=54 pass_avg_us=55555.56 poll_gap_max_us=5000.0 worker_fatal=1\n");
    EXPECT_EQ(lines["loop_pass_us:"], "loop_pass_us: <1=30 <2=15 <8=6 >=16384=3\n");
    StatsSnapshot idle = sample_snapshot();
    for (WorkerStats& w : idle.workers) w.timing = {};
    EXPECT_EQ(report_lines(format_stats(idle))["loop_pass_us:"], "loop_pass_us: none\n");
}

TEST(StatsReport, SaysNoneWithoutDropsAndSkipsAbsentPorts) {
    StatsSnapshot s = sample_snapshot();
    for (WorkerStats& w : s.workers) w.engine.drops = {};
    s.ports[0] = {};
    const std::string text = format_stats(s);
    auto lines = report_lines(text);
    EXPECT_EQ(lines["drops:"], "drops: none\n");
    EXPECT_EQ(lines.count("port inside:"), 0u) << text;
    EXPECT_EQ(lines.count("port outside:"), 1u) << text;
}

// --- Prometheus -------------------------------------------------------------------------------

struct Family {
    std::string type;
    std::string help;
    std::map<std::string, std::string> samples;  // "name{labels}" -> value
};

// Parses the exposition strictly enough to catch misordering: every sample follows the # HELP
// and # TYPE of its family, and no family appears twice.
std::map<std::string, Family> parse_exposition(const std::string& text) {
    std::map<std::string, Family> families;
    std::istringstream in(text);
    std::string line, current;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, std::regex("# HELP (\\w+) (.+)"))) {
            EXPECT_EQ(families.count(m[1]), 0u) << "family twice: " << m[1];
            current = m[1];
            families[current].help = m[2];
            std::string type_line;
            std::getline(in, type_line);
            std::smatch t;
            EXPECT_TRUE(std::regex_match(type_line, t, std::regex("# TYPE (\\w+) (counter|gauge|histogram)")))
                << type_line;
            EXPECT_EQ(t[1], current);
            families[current].type = t[2];
        } else if (std::regex_match(line, m, std::regex("(\\w+)(\\{.*\\})? (\\S+)"))) {
            const std::string sample_name = m[1];
            const bool histogram = families[current].type == "histogram";
            EXPECT_TRUE(sample_name == current ||
                        (histogram && (sample_name == current + "_bucket" ||
                                       sample_name == current + "_sum" ||
                                       sample_name == current + "_count")))
                << "sample outside its family: " << line;
            families[current].samples[std::string(m[1]) + std::string(m[2])] = m[3];
        } else {
            ADD_FAILURE() << "unexpected line: " << line;
        }
    }
    return families;
}

TEST(MetricsPrometheus, EveryFamilyHasHelpAndType) {
    const auto families = parse_exposition(prometheus_text(sample_snapshot()));
    for (const char* name :
         {"snatgw_uptime_seconds", "snatgw_steering_info", "snatgw_packets_total",
          "snatgw_translated_total", "snatgw_drops_total", "snatgw_sessions",
          "snatgw_sessions_active", "snatgw_session_table_capacity",
          "snatgw_sessions_created_total", "snatgw_sessions_expired_total",
          "snatgw_sessions_evicted_total", "snatgw_insert_failed_total", "snatgw_handoffs_total",
          "snatgw_handoff_ring_full_total", "snatgw_ports_in_use", "snatgw_port_capacity",
          "snatgw_port_packets_total", "snatgw_port_missed_total", "snatgw_events_logged_total",
          "snatgw_events_lost_total", "snatgw_control_arp_requests_answered_total",
          "snatgw_control_ring_full_total", "snatgw_mbufs_in_use", "snatgw_mbufs",
          "snatgw_fragments_total", "snatgw_fragments_held_total",
          "snatgw_fragment_datagrams_evicted_total", "snatgw_fragment_datagrams",
          "snatgw_fragments_waiting", "snatgw_worker_loop_pass_seconds",
          "snatgw_worker_poll_gap_max_seconds", "snatgw_worker_fatal_total"})
        EXPECT_EQ(families.count(name), 1u) << name;
    for (const auto& [name, f] : families) {
        EXPECT_FALSE(f.help.empty()) << name;
        const bool total = name.size() > 6 && name.ends_with("_total");
        EXPECT_EQ(f.type == "counter", total) << name << " is a " << f.type;
        EXPECT_FALSE(f.samples.empty()) << name;
    }
}

TEST(MetricsPrometheus, CarriesTheValues) {
    const auto f = parse_exposition(prometheus_text(sample_snapshot()));
    auto v = [&](const std::string& family, const std::string& sample) {
        auto it = f.find(family);
        if (it == f.end()) return std::string("(no family)");
        auto s = it->second.samples.find(sample);
        return s == it->second.samples.end() ? std::string("(no sample)") : s->second;
    };
    EXPECT_EQ(v("snatgw_uptime_seconds", "snatgw_uptime_seconds"), "12.5");
    EXPECT_EQ(v("snatgw_steering_info",
                "snatgw_steering_info{inside=\"software-handoff\",outside=\"rte_flow\"}"),
              "1");
    EXPECT_EQ(v("snatgw_packets_total",
                "snatgw_packets_total{worker=\"0\",port=\"inside\",direction=\"rx\"}"),
              "100");
    EXPECT_EQ(v("snatgw_packets_total",
                "snatgw_packets_total{worker=\"1\",port=\"outside\",direction=\"tx\"}"),
              "140");
    EXPECT_EQ(v("snatgw_translated_total",
                "snatgw_translated_total{worker=\"1\",port=\"inside\"}"),
              "120");
    EXPECT_EQ(v("snatgw_drops_total", "snatgw_drops_total{reason=\"no_session\"}"), "15");
    EXPECT_EQ(v("snatgw_drops_total", "snatgw_drops_total{reason=\"ports_exhausted\"}"), "0");
    EXPECT_EQ(f.at("snatgw_drops_total").samples.size(), kDropReasonCount);
    EXPECT_EQ(v("snatgw_sessions", "snatgw_sessions{proto=\"tcp\",state=\"established\"}"),
              "18");
    EXPECT_EQ(v("snatgw_sessions", "snatgw_sessions{proto=\"udp\",state=\"active\"}"), "9");
    EXPECT_EQ(v("snatgw_sessions", "snatgw_sessions{proto=\"icmp\",state=\"active\"}"), "3");
    EXPECT_EQ(v("snatgw_sessions_active", "snatgw_sessions_active{worker=\"1\"}"), "24");
    EXPECT_EQ(v("snatgw_session_table_capacity",
                "snatgw_session_table_capacity{worker=\"0\"}"),
              "4096");
    EXPECT_EQ(v("snatgw_sessions_created_total", "snatgw_sessions_created_total{worker=\"1\"}"),
              "40");
    EXPECT_EQ(v("snatgw_sessions_expired_total", "snatgw_sessions_expired_total{worker=\"0\"}"),
              "7");
    EXPECT_EQ(v("snatgw_sessions_evicted_total", "snatgw_sessions_evicted_total{worker=\"1\"}"),
              "2");
    EXPECT_EQ(v("snatgw_sessions_flushed_total", "snatgw_sessions_flushed_total{worker=\"1\"}"),
              "16");
    EXPECT_EQ(v("snatgw_insert_failed_total", "snatgw_insert_failed_total{worker=\"0\"}"), "3");
    EXPECT_EQ(v("snatgw_fragments_total", "snatgw_fragments_total{worker=\"1\"}"), "30");
    EXPECT_EQ(v("snatgw_fragments_waiting", "snatgw_fragments_waiting{worker=\"0\"}"), "3");
    EXPECT_EQ(v("snatgw_mbufs_in_use", "snatgw_mbufs_in_use{port=\"outside\"}"), "420");
    EXPECT_EQ(v("snatgw_mbufs", "snatgw_mbufs{port=\"inside\"}"), "16384");
    EXPECT_EQ(v("snatgw_handoffs_total", "snatgw_handoffs_total{worker=\"1\"}"), "6");
    EXPECT_EQ(v("snatgw_handoff_ring_full_total", "snatgw_handoff_ring_full_total{worker=\"0\"}"),
              "5");
    EXPECT_EQ(v("snatgw_ports_in_use",
                "snatgw_ports_in_use{pool=\"lab\",address=\"198.19.0.10\",proto=\"tcp\"}"),
              "9");
    EXPECT_EQ(v("snatgw_ports_in_use",
                "snatgw_ports_in_use{pool=\"lab\",address=\"198.19.0.10\",proto=\"udp\"}"),
              "4");
    EXPECT_EQ(v("snatgw_port_capacity",
                "snatgw_port_capacity{pool=\"lab\",address=\"198.19.0.11\",proto=\"icmp\"}"),
              "64512");
    EXPECT_EQ(v("snatgw_port_packets_total",
                "snatgw_port_packets_total{port=\"outside\",direction=\"rx\"}"),
              "2000");
    EXPECT_EQ(v("snatgw_port_missed_total", "snatgw_port_missed_total{port=\"inside\"}"), "7");
    EXPECT_EQ(v("snatgw_port_rx_nombuf_total", "snatgw_port_rx_nombuf_total{port=\"outside\"}"),
              "12");
    EXPECT_EQ(v("snatgw_rx_paused_total", "snatgw_rx_paused_total{worker=\"1\"}"), "28");
    EXPECT_EQ(v("snatgw_handoff_deferred_total", "snatgw_handoff_deferred_total{worker=\"0\"}"),
              "13");
    EXPECT_EQ(v("snatgw_events_logged_total", "snatgw_events_logged_total"), "77");
    EXPECT_EQ(v("snatgw_events_lost_total", "snatgw_events_lost_total"), "3");
    EXPECT_EQ(v("snatgw_control_echo_replies_total", "snatgw_control_echo_replies_total"), "35");
    EXPECT_EQ(v("snatgw_control_ring_full_total", "snatgw_control_ring_full_total"), "43");
    EXPECT_EQ(v("snatgw_control_hold_full_total", "snatgw_control_hold_full_total"), "44");
    EXPECT_EQ(v("snatgw_control_hold_timeout_total", "snatgw_control_hold_timeout_total"), "45");
    EXPECT_EQ(v("snatgw_control_resolved_at_punt_total", "snatgw_control_resolved_at_punt_total"),
              "46");
}

TEST(MetricsPrometheus, RendersTheLoopPassHistogram) {
    const auto f = parse_exposition(prometheus_text(sample_snapshot()));
    ASSERT_EQ(f.count("snatgw_worker_loop_pass_seconds"), 1u);
    const Family& h = f.at("snatgw_worker_loop_pass_seconds");
    EXPECT_EQ(h.type, "histogram");
    const char* le[] = {"1e-06", "2e-06", "4e-06", "8e-06", "1.6e-05", "3.2e-05",
                        "6.4e-05", "0.000128", "0.000256", "0.000512", "0.001024", "0.002048",
                        "0.004096", "0.008192", "0.016384", "+Inf"};
    // Cumulative counts: worker 1 has 20 passes < 1 us, 10 in [1, 2) us, 4 in [4, 8) us, 2 longer.
    const uint64_t w1[] = {20, 30, 30, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 36};
    for (std::size_t k = 0; k < std::size(le); ++k) {
        const std::string key = std::string("snatgw_worker_loop_pass_seconds_bucket{worker=\"1\",le=\"") + le[k] + "\"}";
        ASSERT_EQ(h.samples.count(key), 1u) << key;
        EXPECT_EQ(h.samples.at(key), std::to_string(w1[k])) << key;
    }
    EXPECT_EQ(h.samples.at("snatgw_worker_loop_pass_seconds_bucket{worker=\"0\",le=\"8e-06\"}"), "17");
    EXPECT_EQ(h.samples.at("snatgw_worker_loop_pass_seconds_count{worker=\"0\"}"), "18");
    EXPECT_EQ(h.samples.at("snatgw_worker_loop_pass_seconds_count{worker=\"1\"}"), "36");
    EXPECT_EQ(h.samples.at("snatgw_worker_loop_pass_seconds_sum{worker=\"0\"}"), "1");
    EXPECT_EQ(h.samples.at("snatgw_worker_loop_pass_seconds_sum{worker=\"1\"}"), "2");
    EXPECT_EQ(h.samples.size(), 2u * (16 + 2));  // 16 buckets, _sum and _count per worker
    const Family& gap = f.at("snatgw_worker_poll_gap_max_seconds");
    EXPECT_EQ(gap.type, "gauge");
    EXPECT_EQ(gap.samples.at("snatgw_worker_poll_gap_max_seconds{worker=\"0\"}"), "0.0025");
    EXPECT_EQ(gap.samples.at("snatgw_worker_poll_gap_max_seconds{worker=\"1\"}"), "0.005");
    EXPECT_EQ(f.at("snatgw_worker_fatal_total").samples.at("snatgw_worker_fatal_total{worker=\"1\"}"), "1");
}

TEST(MetricsPrometheus, EscapesLabelValuesAndHelp) {
    EXPECT_EQ(prometheus_escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    EXPECT_EQ(prometheus_escape_help("a\"b\\c\nd"), "a\"b\\\\c\\nd");
    StatsSnapshot s = sample_snapshot();
    s.ports_in_use[0].pool = "we\"ird\\po\nol";
    const std::string text = prometheus_text(s);
    EXPECT_NE(text.find("snatgw_ports_in_use{pool=\"we\\\"ird\\\\po\\nol\",address=\"198.19.0.10\","
                        "proto=\"tcp\"} 9\n"),
              std::string::npos)
        << text;
}

TEST(MetricsPrometheus, LeavesOutAbsentPorts) {
    StatsSnapshot s = sample_snapshot();
    s.ports[0] = {};
    const std::string text = prometheus_text(s);
    EXPECT_EQ(text.find("snatgw_port_packets_total{port=\"inside\""), std::string::npos);
    EXPECT_NE(text.find("snatgw_port_packets_total{port=\"outside\",direction=\"tx\"} 1900\n"),
              std::string::npos);
    EXPECT_EQ(text.find("snatgw_port_missed_total{port=\"inside\"}"), std::string::npos);
    EXPECT_NE(text.find("snatgw_port_missed_total{port=\"outside\"} 17\n"), std::string::npos);
}

// promtool (Debian package `prometheus`) parses the text and lints the names.
std::string run_promtool(const std::string& text, int& status) {
    char path[] = "/tmp/snatgw-metrics-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    close(fd);
    std::ofstream(path) << text;
    const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    status = p == nullptr ? -1 : pclose(p);
    std::remove(path);
    return out;
}

TEST(MetricsPrometheus, PromtoolAcceptsTheExposition) {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
    int status = 0;
    std::string out = run_promtool(prometheus_text(sample_snapshot()), status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(out, "") << "lint findings";
    // And with odd label values, an empty gateway, and a broken exposition (so the check can
    // fail at all).
    StatsSnapshot odd = sample_snapshot();
    odd.ports_in_use[0].pool = "we\"ird\\po\nol";
    out = run_promtool(prometheus_text(odd), status);
    EXPECT_EQ(status, 0) << out;
    out = run_promtool(prometheus_text(StatsSnapshot{}), status);
    EXPECT_EQ(status, 0) << out;
    out = run_promtool("snatgw_broken{x=\"1} 2\n", status);
    EXPECT_NE(status, 0) << out;
}

// --- HTTP server ------------------------------------------------------------------------------

TEST(MetricsServer, ServesMetricsOnAnEphemeralPort) {
    std::atomic<int> renders{0};
    const std::string body = prometheus_text(sample_snapshot());
    MetricsServer server("127.0.0.1:0", [&] {
        ++renders;
        return body;
    });
    server.start();
    ASSERT_GT(server.port(), 0);
    httplib::Client client("127.0.0.1", server.port());
    client.set_connection_timeout(5);
    auto r = client.Get("/metrics");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(r->body, body);
    EXPECT_EQ(renders.load(), 1);

    r = client.Get("/");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("href=\"/metrics\""), std::string::npos) << r->body;
    for (const char* path : {"/nope", "/metrics/x", "/favicon.ico"}) {
        r = client.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 404) << path;
    }
    EXPECT_EQ(renders.load(), 1);

    server.stop();
    server.stop();  // repeatable
    httplib::Client after("127.0.0.1", server.port());
    after.set_connection_timeout(1);
    EXPECT_FALSE(after.Get("/metrics")) << "still answering after stop()";
}

TEST(MetricsServer, AnswersErrorWhenRenderingFails) {
    MetricsServer server("127.0.0.1:0", []() -> std::string {
        throw std::runtime_error("no snapshot");
    });
    server.start();
    httplib::Client client("127.0.0.1", server.port());
    auto r = client.Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_NE(r->body.find("no snapshot"), std::string::npos);
}

TEST(MetricsServer, RefusesAPortInUse) {
    MetricsServer first("127.0.0.1:0", [] { return std::string("first"); });
    first.start();
    const std::string listen = "127.0.0.1:" + std::to_string(first.port());
    MetricsServer second(listen, [] { return std::string("second"); });
    try {
        second.start();
        FAIL() << "a second server bound " << listen;
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "metrics: cannot listen on " + listen + ": address in use");
    }
    // The first one is unharmed.
    httplib::Client client("127.0.0.1", first.port());
    auto r = client.Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "first");
}

TEST(MetricsServer, RejectsMalformedAddresses) {
    for (const char* bad : {"", "9469", "127.0.0.1", "127.0.0.1:", ":9469", "127.0.0.1:http",
                            "127.0.0.1:65536", "127.0.0.1:-1"}) {
        EXPECT_THROW(MetricsServer(bad, [] { return std::string(); }), std::runtime_error) << bad;
    }
    MetricsServer unavailable("192.0.2.1:0", [] { return std::string(); });  // not ours
    try {
        unavailable.start();
        FAIL() << "bound an address this host does not have";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "metrics: cannot listen on 192.0.2.1:0: address not available on this host");
    }
}

// --- DPDK telemetry ---------------------------------------------------------------------------

bool valid_telemetry_name(const std::string& n) {
    return !n.empty() && n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789_/") == std::string::npos;
}

TEST(TelemetryDict, AnswersEveryCommand) {
    const StatsSnapshot s = sample_snapshot();
    for (std::string_view cmd : kTelemetryCommands) {
        const json d = telemetry_dict(cmd, s);
        ASSERT_TRUE(d.is_object()) << cmd;
        EXPECT_FALSE(d.empty()) << cmd;
        EXPECT_LE(d.size(), std::size_t{RTE_TEL_MAX_DICT_ENTRIES}) << cmd;
        for (const auto& [k, v] : d.items()) {
            EXPECT_TRUE(valid_telemetry_name(k)) << cmd << ": " << k;
            EXPECT_TRUE(v.is_number_unsigned() || v.is_string() || v.is_array())
                << cmd << ": " << k << " = " << v;
        }
    }
    EXPECT_TRUE(telemetry_dict("/snatgw/nope", s).is_null());
}

TEST(TelemetryDict, CarriesTheValues) {
    const StatsSnapshot s = sample_snapshot();
    const json stats = telemetry_dict("/snatgw/stats", s);
    EXPECT_EQ(stats["rx_inside"], 300);
    EXPECT_EQ(stats["translated"], 330);
    EXPECT_EQ(stats["sessions"], 36);
    EXPECT_EQ(stats["workers"], 2);
    EXPECT_EQ(stats["uptime_s"], 12);
    EXPECT_EQ(stats["steering_outside"], "rte_flow");
    EXPECT_EQ(stats["loop_control_tx"], 36);
    EXPECT_EQ(stats["control_echo_replies"], 35);
    EXPECT_EQ(stats["events_lost"], 3);
    EXPECT_EQ(stats["loop_worker_fatal"], 1);
    EXPECT_EQ(stats["loop_poll_gap_max_ns"], 5'000'000);
    EXPECT_EQ(stats["loop_passes"], 54);
    EXPECT_EQ(stats["loop_pass_buckets"], (json{30, 15, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}));
    EXPECT_EQ(stats["loop_pass_bounds_us"].size(), 15u);

    const json workers = telemetry_dict("/snatgw/workers", s);
    EXPECT_EQ(workers["worker"], (json{0, 1}));
    EXPECT_EQ(workers["rx_inside"], (json{100, 200}));
    EXPECT_EQ(workers["sessions"], (json{12, 24}));
    EXPECT_EQ(workers["drops"], (json{9, 18}));
    EXPECT_EQ(workers["poll_gap_max_ns"], (json{2'500'000, 5'000'000}));
    EXPECT_EQ(workers["worker_fatal"], (json{0, 1}));
    EXPECT_EQ(workers["loop_passes"], (json{18, 36}));

    const json drops = telemetry_dict("/snatgw/drops", s);
    EXPECT_EQ(drops.size(), kDropReasonCount);
    EXPECT_EQ(drops["no_session"], 15);
    EXPECT_EQ(drops["wrong_worker"], 0);

    const json sessions = telemetry_dict("/snatgw/sessions", s);
    EXPECT_EQ(sessions["tcp_established"], 18);
    EXPECT_EQ(sessions["tcp_syn_sent"], 0);
    EXPECT_EQ(sessions["udp"], 9);
    EXPECT_EQ(sessions["icmp"], 3);

    const json ports_in_use = telemetry_dict("/snatgw/ports_in_use", s);
    EXPECT_EQ(ports_in_use["pool"], (json{"lab", "lab"}));
    EXPECT_EQ(ports_in_use["address"], (json{"198.19.0.10", "198.19.0.11"}));
    EXPECT_EQ(ports_in_use["tcp"], (json{9, 2}));
    EXPECT_EQ(ports_in_use["per_protocol_capacity"], (json{64512, 64512}));

    const json ports = telemetry_dict("/snatgw/ports", s);
    EXPECT_EQ(ports["inside_rx"], 1000);
    EXPECT_EQ(ports["outside_missed"], 17);
    EXPECT_EQ(ports.size(), 12u);
}

// DPDK frees the arrays of a reply when it sends it on the telemetry socket; called directly,
// the callback's arrays are never sent, so LeakSanitizer must not count them.
#if defined(__SANITIZE_ADDRESS__)
struct NoLeakCheck {
    NoLeakCheck() { __lsan_disable(); }
    ~NoLeakCheck() { __lsan_enable(); }
};
#else
struct NoLeakCheck {};
#endif

int call_telemetry(std::string_view cmd, rte_tel_data* d) {
    [[maybe_unused]] NoLeakCheck no_leak_check;
    return telemetry_callback(std::string(cmd).c_str(), "", d);
}

TEST(TelemetryCallback, UsesTheProviderUntilReset) {
    int calls = 0;
    register_telemetry([&] {
        ++calls;
        return sample_snapshot();
    });
    for (std::string_view cmd : kTelemetryCommands) {
        rte_tel_data* d = rte_tel_data_alloc();
        ASSERT_NE(d, nullptr);
        // 0 also means DPDK accepted every name and value (its limits are checked on add).
        EXPECT_EQ(call_telemetry(cmd, d), 0) << cmd;
        rte_tel_data_free(d);
    }
    EXPECT_EQ(calls, static_cast<int>(kTelemetryCommands.size()));

    rte_tel_data* d = rte_tel_data_alloc();
    EXPECT_EQ(call_telemetry("/snatgw/unknown", d), -EINVAL);

    // Registering again only swaps the provider.
    register_telemetry([]() -> StatsSnapshot { throw std::runtime_error("gone"); });
    EXPECT_EQ(call_telemetry("/snatgw/stats", d), -EIO);

    reset_telemetry_provider();
    EXPECT_EQ(call_telemetry("/snatgw/stats", d), -ENODEV);
    EXPECT_EQ(calls, static_cast<int>(kTelemetryCommands.size()));
    rte_tel_data_free(d);
}

TEST(TelemetryCallback, RefusesWhatExceedsDpdkLimits) {
    StatsSnapshot big = sample_snapshot();
    for (uint32_t i = 0; i < RTE_TEL_MAX_ARRAY_ENTRIES; ++i) {
        PortUse u;
        u.pool = "big";
        u.address = ip("10.0.0.0") + i;
        big.ports_in_use.push_back(u);
    }
    register_telemetry([&] { return big; });
    rte_tel_data* d = rte_tel_data_alloc();
    EXPECT_EQ(call_telemetry("/snatgw/ports_in_use", d), -E2BIG);
    rte_tel_data_free(d);
    d = rte_tel_data_alloc();
    EXPECT_EQ(call_telemetry("/snatgw/drops", d), 0);
    rte_tel_data_free(d);
    reset_telemetry_provider();
}

// --- collect_stats over real engines ----------------------------------------------------------

TEST(StatsCollect, CopiesRealEngines) {
    using test::PacketBuilder;
    test::NatHarness h;
    // One UDP and one TCP session from the inside, and a stray outside packet (no_session).
    auto udp = h.out(PacketBuilder().eth().ipv4(ip("198.18.0.5"), ip("198.19.0.100"))
                         .udp(5000, 53).payload(8).build());
    ASSERT_EQ(udp.result.verdict, Verdict::Forward);
    auto syn = h.out(PacketBuilder().eth().ipv4(ip("198.18.0.6"), ip("198.19.0.100"))
                         .tcp(40000, 80, 1, 0, test::TCP_SYN).build());
    ASSERT_EQ(syn.result.verdict, Verdict::Forward);
    auto stray = h.in(PacketBuilder().eth().ipv4(ip("198.19.0.100"), ip("198.19.0.10"))
                          .udp(53, 1234).payload(8).build());
    ASSERT_EQ(stray.result.verdict, Verdict::Drop);

    LoopCounters loop;
    loop.rx[0] = 2;
    loop.rx[1] = 1;
    loop.tx[1] = 2;
    loop.idle_sleeps = 99;
    ControlCounters control;
    control.echo_replies = 5;

    StatsSources src;
    src.engines = {&h.worker()};
    src.loops = {&loop};
    src.control = &control;
    src.config = &h.config();
    src.steering.outside = OutsideSteering::Flow;
    src.events = {4, 1};
    src.uptime_s = 3.25;
    const StatsSnapshot s = collect_stats(src);

    ASSERT_EQ(s.workers.size(), 1u);
    const WorkerStats& w = s.workers[0];
    EXPECT_EQ(w.id, 0);
    EXPECT_EQ(w.sessions, 2u);
    EXPECT_EQ(w.session_capacity, h.worker().sessions().capacity());
    EXPECT_EQ(w.engine.sessions_created, 2u);
    EXPECT_EQ(w.engine.forwarded[0], 2u);
    EXPECT_EQ(w.engine.udp_sessions, 1u);
    EXPECT_EQ(w.engine.tcp_state[state_index(TcpState::SynSent)], 1u);
    EXPECT_EQ(w.engine.drops[drop_index(DropReason::NoSession)], 1u);
    EXPECT_EQ(w.loop.idle_sleeps, 99u);
    EXPECT_EQ(w.loop.tx[1], 2u);
    EXPECT_EQ(s.control.echo_replies, 5u);
    EXPECT_EQ(s.steering.outside, OutsideSteering::Flow);
    EXPECT_EQ(s.events.logged, 4u);
    EXPECT_DOUBLE_EQ(s.uptime_s, 3.25);
    EXPECT_FALSE(s.ports[0].present);
    EXPECT_FALSE(s.ports[1].present);

    // Both pool addresses, each with the whole range (one worker), one UDP and one TCP port in
    // use between them.
    ASSERT_EQ(s.ports_in_use.size(), 2u);
    uint64_t tcp = 0, udp_ports = 0, icmp = 0;
    for (const PortUse& u : s.ports_in_use) {
        EXPECT_EQ(u.pool, "lab");
        EXPECT_EQ(u.capacity_per_protocol, 65535u - 1024u + 1u);
        tcp += u.in_use[0];
        udp_ports += u.in_use[1];
        icmp += u.in_use[2];
    }
    EXPECT_EQ(s.ports_in_use[0].address, ip("198.19.0.10"));
    EXPECT_EQ(s.ports_in_use[1].address, ip("198.19.0.11"));
    EXPECT_EQ(tcp, 1u);
    EXPECT_EQ(udp_ports, 1u);
    EXPECT_EQ(icmp, 0u);

    // The same numbers come out of the JSON.
    const json j = stats_to_json(s);
    EXPECT_EQ(j["total"]["sessions"], 2);
    EXPECT_EQ(j["drops"]["no_session"], 1);
    EXPECT_EQ(j["sessions_by_state"]["tcp"]["syn_sent"], 1);
}

TEST(StatsCollect, SumsPortCapacityOverWorkers) {
    // Two workers' engines share a pool: each owns half the ports of every address.
    test::NatHarness w0({test::lab_pool()}, 2, 0);
    test::NatHarness w1({test::lab_pool()}, 2, 1);
    StatsSources src;
    src.engines = {&w0.worker(), &w1.worker()};
    src.config = &w0.config();
    const StatsSnapshot s = collect_stats(src);
    ASSERT_EQ(s.workers.size(), 2u);
    EXPECT_EQ(s.workers[1].id, 1);
    EXPECT_EQ(s.workers[1].loop.rx[0], 0u);  // no loop counters given: zeros
    ASSERT_EQ(s.ports_in_use.size(), 2u);
    EXPECT_EQ(s.ports_in_use[0].capacity_per_protocol, 65535u - 1024u + 1u);
}

TEST(StatsCollect, CountsMbufsInUseOfEachPortPool) {
    rte_mempool* pool = rte_pktmbuf_pool_create("stats_mbufs", 1023, 32, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool, nullptr);
    std::vector<rte_mbuf*> held(40, nullptr);
    ASSERT_EQ(rte_pktmbuf_alloc_bulk(pool, held.data(), 40), 0);
    StatsSources src;
    src.mbuf_pools[1] = pool;  // outside
    StatsSnapshot s = collect_stats(src);
    EXPECT_FALSE(s.mbufs[0].present);
    ASSERT_TRUE(s.mbufs[1].present);
    EXPECT_EQ(s.mbufs[1].size, 1023u);
    EXPECT_EQ(s.mbufs[1].in_use, 40u);  // freed mbufs parked in the lcore cache count as free
    rte_pktmbuf_free_bulk(held.data(), 30);
    s = collect_stats(src);
    EXPECT_EQ(s.mbufs[1].in_use, 10u);
    rte_pktmbuf_free_bulk(held.data() + 30, 10);
    EXPECT_EQ(collect_stats(src).mbufs[1].in_use, 0u);
    rte_mempool_free(pool);
}

}  // namespace
}  // namespace snatgw
