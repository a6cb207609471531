// snatgw engine benchmark: one worker, in-process, 64-byte frames, no NIC.
//
// Measures, on one core: new sessions per second (TCP SYN and UDP first packets into an empty
// table), established-flow packet rate and TSC cycles per packet with N live sessions (traffic
// spread over every session in random order, both directions), and bytes of memory per session
// (session array + both hash tables, from DPDK's heap statistics).
//
//   engine_bench [--sessions N] [--passes P] [--burst B] [--proto tcp|udp|both] [--json]
//                [-- EAL arguments]
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_frames.h"
#include "config_builder.h"
#include "nat_worker.h"

namespace po = boost::program_options;
using namespace snatgw;
using bench::FrameSpec;
using bench::kFrameLen;

namespace {

struct Options {
    uint32_t sessions = 1000000;
    uint32_t capacity = 0;  // session table capacity; 0 = sessions
    uint32_t passes = 5;
    uint32_t rounds = 1;
    uint32_t burst = 32;
    std::string proto = "both";
    bool json = false;
};

// Flow i: inside host 198.18.(i % 65536), source port 10000 + i / 65536, toward one of 65024
// remotes in 198.19.0.0 - 198.19.253.255 (the pool sits at 198.19.255.240/28), port 80.
struct Flow {
    uint32_t inside, remote;
    uint16_t sport, dport;
    uint32_t pub_addr = 0;  // learnt from the translated first packet (host order)
    uint16_t pub_port = 0;
};

std::vector<Flow> make_flows(uint32_t n, std::mt19937_64& rng) {
    std::vector<Flow> flows(n);
    for (uint32_t i = 0; i < n; ++i) {
        flows[i].inside = (198u << 24) | (18u << 16) | (i % 65536);
        flows[i].sport = static_cast<uint16_t>(10000 + i / 65536);
        flows[i].remote = (198u << 24) | (19u << 16) | static_cast<uint32_t>(rng() % 65024);
        flows[i].dport = 80;
    }
    return flows;
}

// A set of frames, kept pristine so every pass processes the same untranslated input.
struct FrameSet {
    std::vector<uint8_t> pristine, work;
    std::vector<Frame> frames;
    explicit FrameSet(uint32_t n) : pristine(size_t{n} * kFrameLen), work(size_t{n} * kFrameLen) {
        frames.resize(n);
        for (uint32_t i = 0; i < n; ++i) frames[i] = Frame{&work[size_t{i} * kFrameLen], kFrameLen};
    }
    uint8_t* slot(uint32_t i) { return &pristine[size_t{i} * kFrameLen]; }
    void restore() { std::memcpy(work.data(), pristine.data(), pristine.size()); }
};

struct RunResult {
    uint64_t packets = 0, cycles = 0, forwarded = 0;
    double mpps(uint64_t hz) const { return cycles ? packets * double(hz) / cycles / 1e6 : 0; }
    double cpp() const { return packets ? double(cycles) / packets : 0; }
};

// Runs the frames through the worker in bursts, timing only the engine.
RunResult run(NatWorker& w, Side side, FrameSet& fs, uint32_t burst, uint32_t now_ms,
              std::vector<FrameResult>& results) {
    RunResult r;
    const uint32_t n = static_cast<uint32_t>(fs.frames.size());
    results.resize(n);
    for (uint32_t off = 0; off < n; off += burst) {
        const uint32_t m = std::min(burst, n - off);
        const uint64_t t0 = rte_rdtsc_precise();
        w.process(side, &fs.frames[off], &results[off], m, now_ms);
        r.cycles += rte_rdtsc_precise() - t0;
    }
    r.packets = n;
    for (const FrameResult& fr : results) r.forwarded += fr.verdict == Verdict::Forward;
    return r;
}

std::vector<uint32_t> shuffled(uint32_t n, std::mt19937_64& rng) {
    std::vector<uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), rng);
    return order;
}

NatConfig bench_config() {
    PoolSpec pool;
    pool.name = "bench";
    pool.addresses = "198.19.255.240/28";
    pool.ports = "1024-65535";
    pool.policy = "liberal";
    return build_nat_config(1, {pool}, {{"198.18.0.0/16", "bench"}});
}

nlohmann::json bench_protocol(const Options& o, uint8_t proto, std::mt19937_64& rng) {
    const bool tcp = proto == kProtoTcp;
    const uint64_t hz = rte_get_tsc_hz();
    NatConfig cfg = bench_config();
    nlohmann::json out;
    out["protocol"] = tcp ? "tcp" : "udp";

    // Memory: what one worker's session tables take from DPDK's heap, per session slot.
    const std::size_t heap0 = NatWorker::heap_bytes_in_use();
    std::size_t table_bytes = 0;
    {
        SessionTable probe(tcp ? "probe_t" : "probe_u", o.capacity, 0);
        table_bytes = NatWorker::heap_bytes_in_use() - heap0;
    }
    WorkerParams wp;
    wp.session_capacity = o.capacity;
    wp.host_capacity = 65536;
    wp.seed = 42;
    wp.table_prefix = tcp ? "bt" : "bu";
    const std::size_t heap1 = NatWorker::heap_bytes_in_use();
    NatWorker w(&cfg, wp);
    const std::size_t worker_bytes = NatWorker::heap_bytes_in_use() - heap1;

    std::vector<Flow> flows = make_flows(o.sessions, rng);
    std::vector<FrameResult> results;
    uint32_t now = 1000;

    // Phase 1: new sessions. First packets of every flow, in random order, empty table.
    FrameSet first(o.sessions);
    const std::vector<uint32_t> order = shuffled(o.sessions, rng);
    for (uint32_t i = 0; i < o.sessions; ++i) {
        const Flow& f = flows[order[i]];
        FrameSpec s{f.inside, f.remote, f.sport, f.dport, proto};
        if (tcp) s.tcp_flags = kTcpSyn, s.seq = 1000;
        bench::write_frame(first.slot(i), s);
    }
    // Every round but the last empties the table again (expiry, not timed), so the figure is
    // the average over `rounds` fills of an empty table.
    RunResult created;
    for (uint32_t round = 0; round < o.rounds; ++round) {
        first.restore();
        const RunResult r = run(w, Side::Inside, first, o.burst, now, results);
        created.packets += r.packets, created.cycles += r.cycles;
        created.forwarded = r.forwarded;
        if (round + 1 < o.rounds) {
            now += 1000u * 10000u;  // past every timeout, quarantine included
            while (w.expire(now, 1u << 20) != 0) {
            }
            now += 1000u * 10000u;
            while (w.expire(now, 1u << 20) != 0) {
            }
        }
    }
    for (uint32_t i = 0; i < o.sessions; ++i) {
        const uint8_t* ip = first.frames[i].data + kEthHeaderLen;
        flows[order[i]].pub_addr = load_be32(ip + ipv4_off::kSrc);
        flows[order[i]].pub_port = load_be16(ip + kIpv4MinHeader + l4_off::kSport);
    }
    out["new_sessions"] = {{"sessions", o.sessions},
                           {"created", w.counters().sessions_created},
                           {"failed", o.sessions - created.forwarded},
                           {"per_second_millions", created.mpps(hz)},
                           {"cycles_per_session", created.cpp()}};

    // TCP: complete the handshakes (SYN/ACK in, ACK out) so the flows are ESTABLISHED.
    if (tcp) {
        FrameSet synack(o.sessions), ack(o.sessions);
        for (uint32_t i = 0; i < o.sessions; ++i) {
            const Flow& f = flows[order[i]];
            bench::write_frame(synack.slot(i), {f.remote, f.pub_addr, f.dport, f.pub_port, proto,
                                                kTcpSyn | kTcpAck, 5000, 1001, 65535});
            bench::write_frame(ack.slot(i), {f.inside, f.remote, f.sport, f.dport, proto, kTcpAck,
                                             1001, 5001, 65535});
        }
        synack.restore();
        ack.restore();
        run(w, Side::Outside, synack, o.burst, now, results);
        run(w, Side::Inside, ack, o.burst, now, results);
        out["established_sessions"] =
            w.counters().tcp_state[static_cast<std::size_t>(TcpState::Established)];
    }

    // Phase 2: established traffic over every session, random order, both directions.
    FrameSet outbound(o.sessions), inbound(o.sessions);
    const std::vector<uint32_t> order2 = shuffled(o.sessions, rng);
    for (uint32_t i = 0; i < o.sessions; ++i) {
        const Flow& f = flows[order2[i]];
        bench::write_frame(outbound.slot(i),
                           {f.inside, f.remote, f.sport, f.dport, proto, kTcpAck, 1001, 5001, 65535});
        bench::write_frame(inbound.slot(i),
                           {f.remote, f.pub_addr, f.dport, f.pub_port, proto, kTcpAck, 5001, 1001, 65535});
    }
    RunResult out_total, in_total;
    for (uint32_t p = 0; p < o.passes; ++p) {
        outbound.restore();
        const RunResult a = run(w, Side::Inside, outbound, o.burst, ++now, results);
        inbound.restore();
        const RunResult b = run(w, Side::Outside, inbound, o.burst, now, results);
        out_total.packets += a.packets, out_total.cycles += a.cycles, out_total.forwarded += a.forwarded;
        in_total.packets += b.packets, in_total.cycles += b.cycles, in_total.forwarded += b.forwarded;
    }
    const double both_mpps = (out_total.packets + in_total.packets) * double(hz) /
                             double(out_total.cycles + in_total.cycles) / 1e6;
    out["established"] = {
        {"sessions", w.sessions().size()},
        {"packets", out_total.packets + in_total.packets},
        {"not_forwarded", out_total.packets + in_total.packets - out_total.forwarded -
                              in_total.forwarded},
        {"outbound_mpps", out_total.mpps(hz)},
        {"outbound_cycles_per_packet", out_total.cpp()},
        {"inbound_mpps", in_total.mpps(hz)},
        {"inbound_cycles_per_packet", in_total.cpp()},
        {"mpps", both_mpps},
        {"cycles_per_packet", double(hz) / (both_mpps * 1e6)}};

    // A small working set (4096 flows) over the same big table: the cache-resident upper bound.
    const uint32_t hot = std::min<uint32_t>(4096, o.sessions);
    FrameSet hotset(hot);
    for (uint32_t i = 0; i < hot; ++i) std::memcpy(hotset.slot(i), outbound.slot(i), kFrameLen);
    RunResult hot_total;
    for (uint32_t p = 0; p < 200; ++p) {
        hotset.restore();
        const RunResult a = run(w, Side::Inside, hotset, o.burst, now, results);
        hot_total.packets += a.packets, hot_total.cycles += a.cycles;
    }
    out["hot_4096_flows"] = {{"outbound_mpps", hot_total.mpps(hz)},
                             {"cycles_per_packet", hot_total.cpp()}};

    out["memory"] = {{"session_capacity", o.capacity},
                     {"session_tables_bytes", table_bytes},
                     {"bytes_per_session", double(table_bytes) / o.capacity},
                     {"worker_heap_bytes", worker_bytes},
                     {"port_allocator_bytes", w.ports().memory_bytes()},
                     {"worker_bytes_per_session",
                      double(worker_bytes + w.ports().memory_bytes()) / o.capacity}};
    out["drops"] = w.counters().drop_total();
    out["insert_failed"] = w.counters().insert_failed;
    return out;
}

void print_human(const nlohmann::json& r, uint64_t hz) {
    std::printf("\n== %s, %llu sessions in a table of %llu, TSC %.2f GHz ==\n",
                r["protocol"].get<std::string>().c_str(),
                static_cast<unsigned long long>(r["established"]["sessions"].get<uint64_t>()),
                static_cast<unsigned long long>(r["memory"]["session_capacity"].get<uint64_t>()),
                hz / 1e9);
    const auto& n = r["new_sessions"];
    std::printf("new sessions      : %8.2f M/s   %7.1f cycles/session   (created %llu, failed %llu)\n",
                n["per_second_millions"].get<double>(), n["cycles_per_session"].get<double>(),
                static_cast<unsigned long long>(n["created"].get<uint64_t>()),
                static_cast<unsigned long long>(n["failed"].get<uint64_t>()));
    const auto& e = r["established"];
    std::printf("established out   : %8.2f Mpps  %7.1f cycles/packet\n",
                e["outbound_mpps"].get<double>(), e["outbound_cycles_per_packet"].get<double>());
    std::printf("established in    : %8.2f Mpps  %7.1f cycles/packet\n",
                e["inbound_mpps"].get<double>(), e["inbound_cycles_per_packet"].get<double>());
    std::printf("established both  : %8.2f Mpps  %7.1f cycles/packet   (not forwarded: %llu)\n",
                e["mpps"].get<double>(), e["cycles_per_packet"].get<double>(),
                static_cast<unsigned long long>(e["not_forwarded"].get<uint64_t>()));
    std::printf("hot 4096 flows    : %8.2f Mpps  %7.1f cycles/packet\n",
                r["hot_4096_flows"]["outbound_mpps"].get<double>(),
                r["hot_4096_flows"]["cycles_per_packet"].get<double>());
    const auto& m = r["memory"];
    std::printf("memory            : %8.1f bytes per session slot (sessions + both hashes), %.1f "
                "with host table and port maps\n",
                m["bytes_per_session"].get<double>(), m["worker_bytes_per_session"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
    // Our options first, EAL's after "--".
    int split = argc;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--") == 0) { split = i; break; }

    Options o;
    po::options_description desc("engine_bench options");
    desc.add_options()("help,h", "this help")
        ("sessions", po::value(&o.sessions)->default_value(o.sessions), "live sessions (table capacity)")
        ("capacity", po::value(&o.capacity)->default_value(0), "session table capacity (0: = sessions)")
        ("rounds", po::value(&o.rounds)->default_value(o.rounds), "fills of the empty table for the new-session rate")
        ("passes", po::value(&o.passes)->default_value(o.passes), "established passes over all sessions")
        ("burst", po::value(&o.burst)->default_value(o.burst), "frames per engine call (1-64)")
        ("proto", po::value(&o.proto)->default_value(o.proto), "tcp, udp or both")
        ("json", po::bool_switch(&o.json), "print JSON instead of a table");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(split, argv, desc), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "engine_bench: %s\n", e.what());
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\nEAL arguments follow '--' (default: --no-huge -m 4096 --no-pci)\n";
        return 0;
    }
    if (o.capacity == 0) o.capacity = o.sessions;
    if (o.rounds == 0) o.rounds = 1;
    if (o.capacity < o.sessions) {
        std::fprintf(stderr, "engine_bench: --capacity must be >= --sessions\n");
        return 2;
    }
    if (o.burst == 0 || o.burst > 64 || o.sessions < 64 || (o.proto != "tcp" && o.proto != "udp" && o.proto != "both")) {
        std::fprintf(stderr, "engine_bench: --burst 1-64, --sessions >= 64, --proto tcp|udp|both\n");
        return 2;
    }

    std::vector<std::string> eal = {argv[0]};
    if (split < argc) {
        for (int i = split + 1; i < argc; ++i) eal.push_back(argv[i]);
    } else {
        for (const char* a : {"--no-huge", "-m", "4096", "--no-pci", "-l", "0", "--no-telemetry",
                              "--log-level", "lib.eal:error", "--no-shconf"})
            eal.push_back(a);
    }
    std::vector<char*> eal_argv;
    for (std::string& a : eal) eal_argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "engine_bench: cannot initialise DPDK EAL (%s)\n", rte_strerror(rte_errno));
        return 1;
    }

    std::mt19937_64 rng(7);
    nlohmann::json all = nlohmann::json::array();
    try {
        if (o.proto != "udp") all.push_back(bench_protocol(o, kProtoTcp, rng));
        if (o.proto != "tcp") all.push_back(bench_protocol(o, kProtoUdp, rng));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "engine_bench: %s\n", e.what());
        rte_eal_cleanup();
        return 1;
    }
    if (o.json) {
        std::cout << all.dump(2) << "\n";
    } else {
        for (const auto& r : all) print_human(r, rte_get_tsc_hz());
    }
    rte_eal_cleanup();
    return 0;
}
