// natperf's traffic engine and tests (tools/natperf/traffic_engine.h, trials.h) on real
// frames: two net_ring ports wired to an in-process fake NAT (a thread that translates the
// source address and port like a masquerading gateway, answers ARP for both gateway
// addresses, and can drop every k-th frame, police a rate, cap its table with oldest-first
// eviction, inject garbage, and flush its table when asked by natperf's --flush-command).
// Proves learning over translated tuples, exact loss counting, that garbage is counted and
// ignored, and that the capacity and throughput searches converge on what the fake allows.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>

#include "arp.h"
#include "byte_order.h"
#include "checksum.h"
#include "frame_builder.h"
#include "learned_tuples.h"
#include "test_port.h"
#include "traffic_engine.h"
#include "trials.h"

using namespace natperf;

namespace {

constexpr uint32_t kInitiatorIp = 0xc6120064;  // 198.18.0.100
constexpr uint32_t kInsideGw = 0xc6120001;     // 198.18.0.1
constexpr uint32_t kResponderIp = 0xc6130002;  // 198.19.0.2
constexpr uint32_t kOutsideGw = 0xc6130001;    // 198.19.0.1 (also the public address)
constexpr uint32_t kTestMbufs = 8191;

struct FakeParams {
    uint64_t capacity = 1u << 20;  // sessions; oldest evicted beyond
    uint64_t drop_every = 0;       // drop every k-th inside->outside frame (after translation)
    double rate_limit = 0;         // inside->outside token bucket, frames/s (0: none)
    uint64_t garbage_every = 0;    // after every k-th frame each way, inject a bad frame too
    std::string flush_file;        // when it exists: empty the table, then remove it
};

void fix_checksums(uint8_t* frame) {
    uint8_t* ip = frame + 14;
    snatgw::csum::store16(ip + 10, 0);
    snatgw::csum::store16(ip + 10, snatgw::csum::compute(ip, 20));
    const uint32_t l4_len = snatgw::load_be16(ip + 2) - 20u;
    uint8_t* l4 = ip + 20;
    const bool tcp = ip[9] == 6;
    uint8_t* check = l4 + (tcp ? 16 : 6);
    snatgw::csum::store16(check, 0);
    uint8_t ph[12];
    std::memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = ip[9];
    snatgw::store_be16(ph + 10, static_cast<uint16_t>(l4_len));
    uint16_t c = snatgw::csum::finish(snatgw::csum::partial(l4, l4_len, snatgw::csum::partial(ph, 12)));
    if (!tcp && c == 0) c = 0xffff;
    snatgw::csum::store16(check, c);
}

class FakeNat {
public:
    FakeNat(const std::string& tag, FakeParams p) : p_(std::move(p)) {
        const char* names[4] = {"i2d", "d2i", "r2d", "d2r"};
        for (int i = 0; i < 4; ++i) {
            const std::string n = "np_" + tag + names[i];
            rings_[i] = rte_ring_create(n.c_str(), 4096, 0, 0);
            EXPECT_NE(rings_[i], nullptr) << n;
        }
        // Initiator port: RX from d2i, TX into i2d. Responder port: RX from d2r, TX into r2d.
        // (The ethdev is named "net_ring_" + the name given.)
        initiator_ = port_name(rte_eth_from_rings(("np" + tag + "i").c_str(), &rings_[1], 1, &rings_[0], 1, 0));
        responder_ = port_name(rte_eth_from_rings(("np" + tag + "r").c_str(), &rings_[3], 1, &rings_[2], 1, 0));
        thread_ = std::thread([this] { loop(); });
    }
    ~FakeNat() {
        stop_ = true;
        thread_.join();
        for (rte_ring* r : rings_) {
            void* m;
            while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            rte_ring_free(r);
        }
    }
    const std::string& initiator() const { return initiator_; }
    const std::string& responder() const { return responder_; }
    uint64_t injected(bool toward_initiator) const { return injected_[toward_initiator ? 1 : 0].load(); }
    uint64_t sessions() const { return sessions_.load(); }

private:
    static std::string port_name(int port_id) {
        EXPECT_GE(port_id, 0);
        char name[RTE_ETH_NAME_MAX_LEN] = "";
        if (port_id >= 0) rte_eth_dev_get_name_by_port(static_cast<uint16_t>(port_id), name);
        return name;
    }
    static uint64_t key(uint32_t ip, uint16_t sport, uint16_t dport) {
        return (uint64_t{ip} << 32) | (uint64_t{sport} << 16) | dport;
    }

    bool arp(rte_mbuf* m, uint32_t gw_ip, const snatgw::MacAddr& mac, rte_ring* back) {
        uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
        const auto a = snatgw::parse_arp(d, rte_pktmbuf_data_len(m));
        if (!a) return false;
        uint8_t out[64];
        const uint32_t n = (a->op == snatgw::kArpOpRequest && a->target_ip == gw_ip)
                               ? snatgw::build_arp_reply(out, sizeof out, *a, mac)
                               : 0;
        if (n == 0) {
            rte_pktmbuf_free(m);
            return true;
        }
        std::memcpy(d, out, n);
        m->data_len = static_cast<uint16_t>(n);
        m->pkt_len = n;
        if (rte_ring_enqueue(back, m) != 0) rte_pktmbuf_free(m);
        return true;
    }

    void garbage(rte_mbuf* like, rte_ring* to, bool toward_initiator) {
        rte_mbuf* g = rte_pktmbuf_alloc(like->pool);
        if (g == nullptr) return;
        uint8_t* d = rte_pktmbuf_mtod(g, uint8_t*);
        const uint8_t* src = rte_pktmbuf_mtod(like, const uint8_t*);
        uint16_t len = 0;
        switch (kind_++ % 4) {
        case 0: std::memcpy(d, src, 10); len = 10; break;     // cut inside Ethernet
        case 1: std::memcpy(d, src, 40); len = 40; break;     // cut inside UDP/TCP
        case 2:                                             // an IPv6 frame
            std::memcpy(d, src, 60);
            d[12] = 0x86;
            d[13] = 0xdd;
            len = 60;
            break;
        default:  // ours without the magic (UDP), or a TCP RST (neither SYN nor SYN/ACK)
            std::memcpy(d, src, 60);
            if (d[14 + 9] == 17) d[14 + 20 + 8] ^= 0xff;
            else d[14 + 20 + 13] = 0x04;
            len = 60;
            break;
        }
        g->data_len = len;
        g->pkt_len = len;
        if (rte_ring_enqueue(to, g) == 0) ++injected_[toward_initiator ? 1 : 0];
        else rte_pktmbuf_free(g);
    }

    void flush() {
        inside_.clear();
        by_port_.clear();
        order_.clear();
        next_port_ = 20000;
        sessions_ = 0;
    }

    void from_inside(rte_mbuf* m) {
        uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
        if (snatgw::load_be16(d + 12) == 0x0806 && arp(m, kInsideGw, kInsideMac, rings_[1])) return;
        uint8_t* ip = d + 14;
        uint8_t* l4 = ip + 20;
        const uint64_t k = key(snatgw::load_be32(ip + 12), snatgw::load_be16(l4), snatgw::load_be16(l4 + 2));
        auto it = inside_.find(k);
        uint16_t port;
        if (it == inside_.end()) {
            if (order_.size() >= p_.capacity) {  // evict the oldest
                const uint16_t old = order_.front();
                order_.pop_front();
                inside_.erase(by_port_[old]);
                by_port_.erase(old);
            }
            port = next_port_++;
            inside_[k] = port;
            by_port_[port] = k;
            order_.push_back(port);
            sessions_ = order_.size();
        } else {
            port = it->second;
        }
        ++forwarded_;
        if (p_.drop_every && forwarded_ % p_.drop_every == 0) {
            rte_pktmbuf_free(m);
            return;
        }
        if (p_.rate_limit > 0) {
            // Policed on the send time natperf stamped in the payload, so the fake thread's
            // scheduling (it may sleep while frames queue) does not change the verdict.
            const uint8_t* pl = l4 + 8;
            const uint64_t sent = (uint64_t{snatgw::load_be32(pl + 8)} << 32) | snatgw::load_be32(pl + 12);
            if (sent > last_tsc_) {
                tokens_ = std::min(kBucket, tokens_ + static_cast<double>(sent - last_tsc_) * p_.rate_limit / hz_);
                last_tsc_ = sent;
            }
            if (tokens_ < 1) {
                rte_pktmbuf_free(m);
                return;
            }
            tokens_ -= 1;
        }
        snatgw::store_be32(ip + 12, kOutsideGw);
        snatgw::store_be16(l4, port);
        fix_checksums(d);
        std::memcpy(d + 6, kOutsideMac.data(), 6);
        if (p_.garbage_every && forwarded_ % p_.garbage_every == 0) garbage(m, rings_[3], false);
        if (rte_ring_enqueue(rings_[3], m) != 0) rte_pktmbuf_free(m);
    }

    void from_outside(rte_mbuf* m) {
        uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
        if (snatgw::load_be16(d + 12) == 0x0806 && arp(m, kOutsideGw, kOutsideMac, rings_[3])) return;
        uint8_t* ip = d + 14;
        uint8_t* l4 = ip + 20;
        auto it = by_port_.find(snatgw::load_be16(l4 + 2));
        if (it == by_port_.end() || snatgw::load_be32(ip + 16) != kOutsideGw) {
            rte_pktmbuf_free(m);  // no session: dropped, like a NAT
            return;
        }
        snatgw::store_be32(ip + 16, static_cast<uint32_t>(it->second >> 32));
        snatgw::store_be16(l4 + 2, static_cast<uint16_t>(it->second >> 16));
        fix_checksums(d);
        std::memcpy(d + 6, kInsideMac.data(), 6);
        ++returned_;
        if (p_.garbage_every && returned_ % p_.garbage_every == 0) garbage(m, rings_[1], true);
        if (rte_ring_enqueue(rings_[1], m) != 0) rte_pktmbuf_free(m);
    }

    void loop() {
        hz_ = static_cast<double>(rte_get_tsc_hz());
        last_tsc_ = rte_rdtsc();
        uint64_t next_check = 0;
        void* burst[32];
        while (!stop_) {
            const uint64_t now = rte_rdtsc();
            if (!p_.flush_file.empty() && now >= next_check) {
                next_check = now + static_cast<uint64_t>(hz_ / 500);
                if (access(p_.flush_file.c_str(), F_OK) == 0) {
                    flush();
                    unlink(p_.flush_file.c_str());
                }
            }
            unsigned n = rte_ring_dequeue_burst(rings_[0], burst, 32, nullptr);
            for (unsigned i = 0; i < n; ++i) from_inside(static_cast<rte_mbuf*>(burst[i]));
            unsigned r = rte_ring_dequeue_burst(rings_[2], burst, 32, nullptr);
            for (unsigned i = 0; i < r; ++i) from_outside(static_cast<rte_mbuf*>(burst[i]));
            if (n + r == 0) std::this_thread::yield();
        }
    }

    static constexpr snatgw::MacAddr kInsideMac{0x02, 0, 0, 0, 0xaa, 1};
    static constexpr snatgw::MacAddr kOutsideMac{0x02, 0, 0, 0, 0xbb, 1};
    FakeParams p_;
    rte_ring* rings_[4]{};
    std::string initiator_, responder_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::unordered_map<uint64_t, uint16_t> inside_;
    std::unordered_map<uint16_t, uint64_t> by_port_;
    std::deque<uint16_t> order_;
    uint16_t next_port_ = 20000;
    uint64_t forwarded_ = 0, returned_ = 0;
    // Deep enough that a tester stalled for 1/4 s at phase-1 rates still passes untouched.
    static constexpr double kBucket = 512;
    double tokens_ = kBucket, hz_ = 1;
    uint64_t last_tsc_ = 0;
    unsigned kind_ = 0;
    std::atomic<uint64_t> injected_[2]{};
    std::atomic<uint64_t> sessions_{0};
};

int g_tag = 0;

// natperf's two ports on a fresh fake NAT, and its engine.
struct Bench {
    explicit Bench(FakeParams p, Options o = Options{})
        : tag("t" + std::to_string(++g_tag)), nat(tag, std::move(p)), options(std::move(o)),
          learned(options.tuples()) {
        ini = open_port(tag + "i", nat.initiator(), kInitiatorIp, kInsideGw, 2, kTestMbufs);
        res = open_port(tag + "r", nat.responder(), kResponderIp, kOutsideGw, 2, kTestMbufs);
        EngineConfig cfg;
        cfg.initiator_ip = kInitiatorIp;
        cfg.responder_ip = kResponderIp;
        cfg.seed = options.seed;
        cfg.frame_len = options.frame_size - 4;
        cfg.proto = options.proto;
        engine = std::make_unique<Engine>(cfg, ini->port, res->port, learned);
    }
    std::string tag;
    FakeNat nat;  // outlives the ports (declared first)
    Options options;
    LearnedTuples learned;
    std::unique_ptr<OpenPort> ini, res;
    std::unique_ptr<Engine> engine;
};

Options small_options() {
    Options o;
    o.initiator_ip = kInitiatorIp;
    o.initiator_gateway = kInsideGw;
    o.responder_ip = kResponderIp;
    o.responder_gateway = kOutsideGw;
    o.src = PortRange{10000, 10049};
    o.dst = PortRange{80, 83};  // 200 tuples
    o.phase1_rate = 20000;
    o.timeout_ms = 300;
    o.duration = 0.2;
    return o;
}

TrialSpec phase1_spec(const TupleSpace& space, double rate) {
    TrialSpec s;
    s.space = &space;
    s.tuples = space.size();
    s.initiator = TxPlan{true, Kind::Phase1, TxOrder::Permuted, rate, space.size(), false};
    s.tx_seconds = 2;
    s.timeout_s = 1;
    s.learn = true;
    return s;
}

}  // namespace

TEST(NatperfEngine, Phase1LearnsTranslatedTuplesAndValidationReturns) {
    Bench b(FakeParams{}, small_options());
    ASSERT_TRUE(b.ini->link_up);
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    EXPECT_TRUE(b.res->port.arp.gateway_known);
    const TupleSpace space(b.options.src, b.options.dst, 1);
    const TrialStats st = b.engine->run(phase1_spec(space, 20000));
    EXPECT_EQ(st.forward.sent, 200u);
    EXPECT_EQ(st.forward.received, 200u);
    EXPECT_EQ(st.learned_new, 200u);
    ASSERT_EQ(b.learned.count(), 200u);
    EXPECT_EQ(b.nat.sessions(), 200u);
    // Learned over the translation: the public address and ports 20000.. of the fake NAT.
    std::vector<bool> ports(200);
    for (uint64_t i = 0; i < 200; ++i) {
        ASSERT_TRUE(b.learned.has(i));
        EXPECT_EQ(b.learned.at(i).public_ip, kOutsideGw);
        const uint16_t p = b.learned.at(i).public_port;
        ASSERT_GE(p, 20000);
        ASSERT_LT(p, 20200);
        EXPECT_FALSE(ports[p - 20000]);
        ports[p - 20000] = true;
    }
    // Validation: one SYN/ACK-like reverse frame per learned tuple, all back at the Initiator.
    TrialSpec v;
    v.space = &space;
    v.tuples = 200;
    v.responder = TxPlan{true, Kind::Validation, TxOrder::Sequential, 20000, 200, false};
    v.tx_seconds = 2;
    v.timeout_s = 1;
    const TrialStats vs = b.engine->run(v);
    EXPECT_EQ(vs.reverse.sent, 200u);
    EXPECT_EQ(vs.reverse.received, 200u);
    EXPECT_EQ(vs.reverse.duplicates, 0u);
    EXPECT_EQ(b.ini->port.counters.rx_unexpected, 0u);
    EXPECT_EQ(b.res->port.counters.rx_unexpected, 0u);
}

TEST(NatperfEngine, LossIsCountedExactlyAndLatencySampled) {
    FakeParams p;
    p.drop_every = 10;
    Bench b(p, small_options());
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    const TupleSpace space(b.options.src, b.options.dst, 1);
    // Phase 1 through the lossy NAT: 20 of 200 lost, so 180 learned.
    TrialStats st = b.engine->run(phase1_spec(space, 20000));
    EXPECT_EQ(st.forward.received, 180u);
    EXPECT_EQ(b.learned.count(), 180u);
    // Phase 2 both ways: forward loses every 10th frame; reverse (no loss in the fake) none.
    TrialSpec s;
    s.space = &space;
    s.tuples = 200;
    s.initiator = TxPlan{true, Kind::Forward, TxOrder::Random, 10000, 1000, true};
    s.responder = TxPlan{true, Kind::Reverse, TxOrder::Random, 10000, 1000, true};
    s.tx_seconds = 2;
    s.timeout_s = 0.5;
    st = b.engine->run(s);
    EXPECT_EQ(st.forward.sent, 1000u);
    EXPECT_EQ(st.forward.received, 900u);
    EXPECT_EQ(st.reverse.sent, 1000u);
    EXPECT_EQ(st.reverse.received, 1000u);
    EXPECT_EQ(st.forward.latency_cycles.size(), 900u);
    EXPECT_EQ(st.reverse.latency_cycles.size(), 1000u);
    EXPECT_TRUE(std::is_sorted(st.reverse.latency_cycles.begin(), st.reverse.latency_cycles.end()));
    EXPECT_GT(st.reverse.latency_cycles.front(), 0u);
}

TEST(NatperfEngine, GarbageIsCountedAndIgnored) {
    FakeParams p;
    p.garbage_every = 7;
    Bench b(p, small_options());
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    const TupleSpace space(b.options.src, b.options.dst, 1);
    TrialStats st = b.engine->run(phase1_spec(space, 20000));
    EXPECT_EQ(st.forward.received, 200u);
    TrialSpec s;
    s.space = &space;
    s.tuples = 200;
    s.initiator = TxPlan{true, Kind::Forward, TxOrder::Random, 10000, 1400, false};
    s.responder = TxPlan{true, Kind::Reverse, TxOrder::Random, 10000, 1400, false};
    s.tx_seconds = 2;
    s.timeout_s = 0.5;
    st = b.engine->run(s);
    EXPECT_TRUE(st.forward.lossless());
    EXPECT_TRUE(st.reverse.lossless());
    b.engine->idle(0.05);
    const PortCounters& ri = b.res->port.counters;
    const PortCounters& ii = b.ini->port.counters;
    EXPECT_GT(b.nat.injected(false), 100u);
    EXPECT_EQ(ri.rx_malformed + ri.rx_foreign, b.nat.injected(false));
    EXPECT_EQ(ii.rx_malformed + ii.rx_foreign, b.nat.injected(true));
    EXPECT_GT(ri.rx_malformed, 0u);
    EXPECT_GT(ri.rx_foreign, 0u);
}

TEST(NatperfRunner, CapacitySearchFindsTheTableSize) {
    FakeParams p;
    p.capacity = 150;
    p.flush_file = "/tmp/natperf_unit_flush_" + std::to_string(getpid());
    Options o = small_options();
    o.tests = {TestKind::Capacity};
    o.flush_command = "touch " + p.flush_file + " && while [ -e " + p.flush_file + " ]; do sleep 0.002; done";
    o.capacity_start = 16;
    o.capacity_max = 200;
    o.capacity_precision = 1;
    o.timeout_ms = 1000;  // a passing trial ends as soon as all arrived; failing ones wait
    Bench b(p, o);
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    Runner runner(b.options, *b.engine, b.learned);
    const nlohmann::json rec = runner.run(TestKind::Capacity);
    ASSERT_TRUE(runner.ok()) << rec.dump(1);
    EXPECT_EQ(rec["result"]["capacity_connections"], 150) << rec.dump(1);
    // 16, 32, 64, 128 pass; 200 fails; then binary search.
    ASSERT_GE(rec["trials"].size(), 6u);
    EXPECT_EQ(rec["trials"][4]["value"], 200);
    EXPECT_FALSE(rec["trials"][4]["pass"]);
    // A failing trial's phase 1 all arrived (the fake evicts rather than drops): validation failed.
    EXPECT_EQ(rec["trials"][4]["forward"]["received"], 200);
    EXPECT_EQ(rec["trials"][4]["reverse"]["received"], 150);
}

TEST(NatperfRunner, ThroughputSearchStaysUnderTheDutRate) {
    FakeParams p;
    p.rate_limit = 20000;
    Options o = small_options();
    o.phase1_rate = 2000;
    o.rate_min = 1000;
    o.rate_max = 200000;
    o.precision = 5000;
    o.max_steps = 12;
    Bench b(p, o);
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    Runner runner(b.options, *b.engine, b.learned);
    const nlohmann::json rec = runner.run(TestKind::Throughput);
    ASSERT_TRUE(runner.ok()) << rec.dump(1);
    EXPECT_EQ(rec["trials"][0]["step"], "phase1");
    const double best = rec["result"]["throughput_fps"];
    // The fake passes at most 20000 frames/s (+ its bucket): no figure above that.
    EXPECT_LE(best, 20000 * 1.1 + 512 / o.duration);
    EXPECT_GE(rec["trials"].size(), 3u);
    EXPECT_FALSE(rec["trials"][1]["pass"]);  // 200000 fps fails
}

TEST(NatperfRunner, TeardownChecksTheStateIsGone) {
    FakeParams p;
    p.flush_file = "/tmp/natperf_unit_flush2_" + std::to_string(getpid());
    Options o = small_options();
    o.flush_command = "touch " + p.flush_file + " && while [ -e " + p.flush_file + " ]; do sleep 0.002; done";
    Bench b(p, o);
    ASSERT_TRUE(b.engine->resolve_gateways(2));
    Runner runner(b.options, *b.engine, b.learned);
    const nlohmann::json rec = runner.run(TestKind::TeardownRate);
    ASSERT_TRUE(runner.ok()) << rec.dump(1);
    EXPECT_TRUE(rec["result"]["state_gone_after_flush"]);
    EXPECT_EQ(rec["result"]["connections"], 200);
    EXPECT_EQ(b.nat.sessions(), 0u);
}

TEST(NatperfDirectionStats, OnPaceOnlyWhenEveryFrameLeftInItsSlot) {
    DirectionStats d;
    d.planned = d.sent = 1001;
    d.tx_seconds = 0.1;  // 1000 gaps at 10000 frames/s: exactly on time
    EXPECT_TRUE(d.on_pace(10000));
    d.tx_seconds = 0.1 * 1.02 + 0.00019;  // within 2 % + 200 us
    EXPECT_TRUE(d.on_pace(10000));
    d.tx_seconds = 0.1 * 1.03;  // 3 % late
    EXPECT_FALSE(d.on_pace(10000));
    d.tx_seconds = 0.2;  // pushed back to half the rate: every frame arrived, but at 5000/s
    EXPECT_FALSE(d.on_pace(10000));
    EXPECT_TRUE(d.on_pace(5000));
    d.tx_seconds = 0.1;
    d.sent = 1000;  // one frame never left
    EXPECT_FALSE(d.on_pace(10000));
    DirectionStats one;
    one.planned = one.sent = 1;
    EXPECT_TRUE(one.on_pace(1e6));
}
