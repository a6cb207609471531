// The worker lcore's entry and the loop's timing (issue 13): nothing escapes worker_main (a
// failure is counted in worker_fatal, its reason recorded, the daemon's stop raised), on fake
// bodies and on the real loop over two net_ring ports with a throwing test hook, where the
// failed worker must also have left the RCU reader set; the pass-time buckets' bounds; and the
// real loop's timing figures.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "nat_fixture.h"
#include "neighbour_table.h"
#include "route_table.h"
#include "worker_loop.h"

namespace snatgw {
namespace {

// --- pass time buckets ------------------------------------------------------------------------

TEST(LoopTimingBuckets, ArePowersOfTwoMicroseconds) {
    const PassBuckets b(1'000'000'000);  // 1000 cycles per microsecond
    for (std::size_t k = 0; k + 1 < LoopTiming::kBuckets; ++k)
        EXPECT_EQ(b.bound_cycles(k), 1000u << k) << k;
    EXPECT_EQ(b.bucket(0), 0u);
    EXPECT_EQ(b.bucket(999), 0u);      // < 1 us
    EXPECT_EQ(b.bucket(1000), 1u);     // [1, 2) us
    EXPECT_EQ(b.bucket(1999), 1u);
    EXPECT_EQ(b.bucket(2000), 2u);     // [2, 4) us
    EXPECT_EQ(b.bucket(3999), 2u);
    EXPECT_EQ(b.bucket(4000), 3u);
    EXPECT_EQ(b.bucket(1'000'000), 10u);   // 1 ms: [512, 1024) us
    EXPECT_EQ(b.bucket(16'383'999), 14u);  // just under 16384 us
    EXPECT_EQ(b.bucket(16'384'000), 15u);  // the rest
    EXPECT_EQ(b.bucket(std::numeric_limits<uint64_t>::max()), 15u);
    EXPECT_EQ(LoopTiming::bound_us(0), 1u);
    EXPECT_EQ(LoopTiming::bound_us(14), 16384u);
}

TEST(LoopTimingBuckets, RoundBoundsUpAtAnOddFrequency) {
    // 2399.999999 cycles per microsecond: 2399 cycles are under 1 us, 2400 are not.
    const PassBuckets b(2'399'999'999);
    EXPECT_EQ(b.bound_cycles(0), 2400u);
    EXPECT_EQ(b.bucket(2399), 0u);
    EXPECT_EQ(b.bucket(2400), 1u);
    EXPECT_EQ(b.bound_cycles(14), 39'321'600u);  // ceil(2399999999 * 16384 / 1e6)
    EXPECT_EQ(b.bucket(39'321'599), 14u);
    EXPECT_EQ(b.bucket(39'321'600), 15u);
}

// --- the guard at the lcore entry -------------------------------------------------------------

struct Guarded {
    Guarded() {
        shared.stop = &stop;
        ctx.shared = &shared;
    }
    WorkerShared shared;
    std::atomic<bool> stop{false};
    WorkerContext ctx;
};

TEST(WorkerGuard, CatchesAStdExceptionCountsItAndRaisesTheStop) {
    Guarded g;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* {
        throw std::runtime_error("boom");
    });
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(g.ctx.counters.worker_fatal, 1u);
    EXPECT_TRUE(g.ctx.fault.raised.load());
    EXPECT_STREQ(g.ctx.fault.reason, "exception: boom");
    EXPECT_TRUE(g.stop.load());
}

TEST(WorkerGuard, CatchesWhatIsNotAStdException) {
    Guarded g;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* { throw 42; });
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(g.ctx.counters.worker_fatal, 1u);
    EXPECT_STREQ(g.ctx.fault.reason, "unknown exception (not a std::exception)");
    EXPECT_TRUE(g.stop.load());
}

TEST(WorkerGuard, CatchesBadAlloc) {
    Guarded g;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* {
        throw std::bad_alloc();
    });
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(std::string(g.ctx.fault.reason), std::string("exception: ") + std::bad_alloc().what());
    EXPECT_TRUE(g.stop.load());
}

TEST(WorkerGuard, CountsALoopThatCouldNotRun) {
    Guarded g;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* {
        return "cannot allocate a TX buffer";
    });
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(g.ctx.counters.worker_fatal, 1u);
    EXPECT_STREQ(g.ctx.fault.reason, "cannot allocate a TX buffer");
    EXPECT_TRUE(g.stop.load());
}

TEST(WorkerGuard, LeavesANormalStopAlone) {
    Guarded g;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* { return nullptr; });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(g.ctx.counters.worker_fatal, 0u);
    EXPECT_FALSE(g.ctx.fault.raised.load());
    EXPECT_STREQ(g.ctx.fault.reason, "");
    EXPECT_FALSE(g.stop.load());
}

TEST(WorkerGuard, TruncatesALongReasonAndNeedsNoStopFlag) {
    Guarded g;
    g.shared.stop = nullptr;
    const int rc = run_worker_guarded(g.ctx, [](WorkerContext&) -> const char* {
        throw std::runtime_error(std::string(1000, 'x'));
    });
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(std::strlen(g.ctx.fault.reason), WorkerFault::kReasonMax - 1);
    EXPECT_EQ(std::string(g.ctx.fault.reason, 11), "exception: ");
    EXPECT_TRUE(g.ctx.fault.raised.load());
}

TEST(WorkerGuard, WorkerMainIsNoexcept) {
    static_assert(noexcept(worker_main(nullptr)));
    static_assert(noexcept(run_worker_guarded(std::declval<WorkerContext&>(), nullptr)));
    SUCCEED();
}

// --- the real loop ----------------------------------------------------------------------------

uint64_t read(const uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }

// One worker on two net_ring ports (empty queues), its engine on the lab configuration, and
// an RCU tracker it reports to, as the daemon sets it up.
class LoopRig {
public:
    LoopRig() {
        static std::atomic<int> instance{0};
        const std::string tag = std::to_string(instance++);
        pool_ = rte_pktmbuf_pool_create(("wl_pool" + tag).c_str(), 1023, 0, sizeof(MbufMeta),
                                        RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        EXPECT_NE(pool_, nullptr);
        for (int side = 0; side < 2; ++side) {
            const std::string n = "wl" + tag + (side == 0 ? "in" : "out");
            rx_[side] = rte_ring_create((n + "rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
            tx_[side] = rte_ring_create((n + "tx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
            const int id = rte_eth_from_rings(n.c_str(), &rx_[side], 1, &tx_[side], 1, SOCKET_ID_ANY);
            EXPECT_GE(id, 0);
            port_[side] = static_cast<uint16_t>(id);
            rte_eth_conf conf{};
            EXPECT_EQ(rte_eth_dev_configure(port_[side], 1, 1, &conf), 0);
            EXPECT_EQ(rte_eth_rx_queue_setup(port_[side], 0, 64, SOCKET_ID_ANY, nullptr, pool_), 0);
            EXPECT_EQ(rte_eth_tx_queue_setup(port_[side], 0, 64, SOCKET_ID_ANY, nullptr), 0);
            EXPECT_EQ(rte_eth_dev_start(port_[side]), 0);
            shared.port[side].port_id = port_[side];
        }
        shared.port[0].addr = test::ip("198.18.0.1");
        shared.port[0].subnet = test::ip("198.18.0.0");
        shared.port[0].mask = 0xffffff00;
        shared.port[1].addr = test::ip("198.19.0.1");
        shared.port[1].subnet = test::ip("198.19.0.0");
        shared.port[1].mask = 0xffffff00;
        punt_ = rte_ring_create(("wl_punt" + tag).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ctl_ = rte_ring_create(("wl_ctl" + tag).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        shared.punt[0] = punt_;
        shared.control_tx[0] = ctl_;
        shared.neighbours = &neighbours_;
        shared.routes = &routes_;
        shared.running = &running;
        shared.stop = &stop;
        shared.tsc_hz = rte_get_tsc_hz();
        shared.tsc_per_ms = rte_get_tsc_hz() / 1000;
        rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("wl_rcu", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE));
        EXPECT_NE(rcu, nullptr);
        EXPECT_EQ(rte_rcu_qsbr_init(rcu, 1), 0);
        shared.rcu = rcu;
        ctx.engine = &nat_.worker();
        ctx.shared = &shared;
        ctx.start_tsc = rte_rdtsc();
    }
    ~LoopRig() {
        for (int side = 0; side < 2; ++side) {
            rte_eth_dev_stop(port_[side]);
            rte_eth_dev_close(port_[side]);
            for (rte_ring* r : {rx_[side], tx_[side]}) {
                void* m;
                while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
                rte_ring_free(r);
            }
        }
        rte_ring_free(punt_);
        rte_ring_free(ctl_);
        rte_free(rcu);
        rte_mempool_free(pool_);
    }

    // Runs worker_main on a thread until it returns, or until `until` holds and then stops it.
    // returned_on_its_own: the worker returned before anyone cleared `running`.
    int run(bool (*until)(const WorkerContext&), std::chrono::seconds limit = std::chrono::seconds(20)) {
        int rc = 1234;
        std::thread t([&] {
            rc = worker_main(&ctx);
            returned_.store(true);
        });
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!returned_.load() && std::chrono::steady_clock::now() < deadline && !until(ctx))
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        returned_on_its_own = returned_.load();
        running.store(false);
        t.join();
        return rc;
    }
    bool returned_on_its_own = false;

    WorkerShared shared;
    WorkerContext ctx;
    std::atomic<bool> running{true};
    std::atomic<bool> stop{false};
    rte_rcu_qsbr* rcu = nullptr;

private:
    test::NatHarness nat_;
    NeighbourTable neighbours_{64};
    RouteTable routes_{"wl_routes" + std::to_string(reinterpret_cast<uintptr_t>(this)), 16};
    rte_mempool* pool_ = nullptr;
    rte_ring* rx_[2] = {};
    rte_ring* tx_[2] = {};
    rte_ring* punt_ = nullptr;
    rte_ring* ctl_ = nullptr;
    uint16_t port_[2] = {};
    std::atomic<bool> returned_{false};
};

uint64_t passes_of(const WorkerContext& c) {
    uint64_t n = 0;
    for (const uint64_t& b : c.timing.pass) n += read(b);
    return n;
}

TEST(WorkerLoop, TimesPassesAndPollGapsAndStopsCleanly) {
    LoopRig rig;
    // Sleeps after every empty poll: the gap between two RX polls includes the sleep, the
    // pass time does not.
    rig.shared.idle_polls = 1;
    rig.shared.idle_sleep_us = 300;
    const int rc = rig.run([](const WorkerContext& c) { return passes_of(c) >= 200; });
    EXPECT_EQ(rc, 0);
    EXPECT_FALSE(rig.returned_on_its_own);
    EXPECT_EQ(rig.ctx.counters.worker_fatal, 0u);
    EXPECT_FALSE(rig.stop.load());
    EXPECT_FALSE(rig.ctx.fault.raised.load());
    const LoopTiming& t = rig.ctx.timing;
    const uint64_t passes = passes_of(rig.ctx);
    EXPECT_GE(passes, 200u);
    EXPECT_GE(rig.ctx.counters.idle_sleeps, passes);  // every pass slept (the last one too)
    EXPECT_GT(t.pass_cycles, 0u);
    const PassBuckets b(rig.shared.tsc_hz);
    // The gap covers at least one 300 us sleep.
    EXPECT_GE(t.poll_gap_max_cycles, rig.shared.tsc_hz * 300 / 1'000'000);
    // Passes are timed without their sleep: most are far below 256 us (bucket 9 is [256, 512)).
    uint64_t short_passes = 0;
    for (std::size_t k = 0; k < 9; ++k) short_passes += t.pass[k];
    EXPECT_GT(short_passes, passes / 2) << "pass times include the idle sleep?";
    EXPECT_LT(t.pass_cycles / passes, b.bound_cycles(8));
    // The worker left the RCU reader set: a grace period ends without it.
    const uint64_t token = rte_rcu_qsbr_start(rig.rcu);
    EXPECT_EQ(rte_rcu_qsbr_check(rig.rcu, token, false), 1);
}

TEST(WorkerLoop, AThrowInTheLoopIsCaughtCountedAndStopsTheDaemon) {
    LoopRig rig;
    static std::atomic<int> calls{0};
    calls = 0;
    rig.shared.pass_hook = [](WorkerContext&) {
        if (++calls == 50) throw std::length_error("injected by the test");
    };
    // The worker returns on its own: nobody clears `running`.
    const int rc = rig.run([](const WorkerContext&) { return false; }, std::chrono::seconds(2));
    EXPECT_EQ(rc, -1);
    EXPECT_TRUE(rig.returned_on_its_own);
    EXPECT_EQ(calls.load(), 50);
    EXPECT_EQ(rig.ctx.counters.worker_fatal, 1u);
    EXPECT_TRUE(rig.ctx.fault.raised.load());
    EXPECT_STREQ(rig.ctx.fault.reason, "exception: injected by the test");
    EXPECT_TRUE(rig.stop.load());
    EXPECT_GE(passes_of(rig.ctx), 48u);
    // Unwinding took the worker out of the RCU reader set (else a configuration change's grace
    // period would wait forever for a dead worker).
    const uint64_t token = rte_rcu_qsbr_start(rig.rcu);
    EXPECT_EQ(rte_rcu_qsbr_check(rig.rcu, token, false), 1);
}

}  // namespace
}  // namespace snatgw
