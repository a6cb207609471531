// Tests the daemon's side of the control socket: LiveConfig (control/live_config.h: a change is
// validated, published and kept, or refused and nothing changes; drained addresses and pools
// are forgotten; retired pool slots are reused) and ControlApi (control/control_api.h) against
// real NAT engines served by stand-in worker threads, request by request as the API documents
// them (docs/control.md).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_api.h"
#include "control_protocol.h"
#include "daemon_config.h"
#include "expiry_lists.h"  // kMaxPools
#include "live_config.h"
#include "nat_fixture.h"  // NatOutcome, PacketBuilder, decode
#include "nat_worker.h"
#include "worker_loop.h"

namespace snatgw::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

PoolSpec pool_spec(const std::string& name, const std::string& addresses,
                   const std::string& ports = "1024-65535") {
    PoolSpec p;
    p.name = name;
    p.addresses = addresses;
    p.ports = ports;
    return p;
}

DaemonConfig daemon_config(uint16_t workers, std::vector<PoolSpec> pools, std::vector<RuleSpec> rules) {
    DaemonConfig c;
    c.workers = workers;
    c.nat = build_nat_config(workers, pools, rules);
    c.pools = std::move(pools);
    c.rules = std::move(rules);
    return c;
}

// Everything a PoolSpec / RuleSpec holds, as text, to compare lists before and after.
std::string describe(const std::vector<PoolSpec>& pools) {
    std::string out;
    for (const PoolSpec& p : pools) {
        out += p.name + "|" + p.addresses + "|" + p.ports + "|" + p.policy + "|" +
               std::to_string(p.timeouts.udp) + "|" + std::to_string(p.max_sessions_per_host) +
               (p.retired ? "|retired" : "|live") + "|draining:";
        for (uint32_t a : p.draining) out += format_ipv4(a) + ",";
        out += ";";
    }
    return out;
}
std::string describe(const std::vector<RuleSpec>& rules) {
    std::string out;
    for (const RuleSpec& r : rules) out += r.prefix + "->" + r.pool + ";";
    return out;
}

// =============================================================================================
// LiveConfig without workers (no RCU: the old snapshot is freed at once)
// =============================================================================================

TEST(LiveConfig, ApplyChangesPoolsRulesAndPublishesTheNewSnapshot) {
    DaemonConfig cfg = daemon_config(1, {pool_spec("lab", "198.19.0.10-198.19.0.11")},
                                     {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);
    EXPECT_EQ(live.published()->load(), &live.current());
    ASSERT_EQ(live.current().pools.size(), 1u);

    int changes = 0;
    const NatConfig* seen = nullptr;
    live.set_on_change([&](const NatConfig& c) {
        ++changes;
        seen = &c;
    });

    const NatConfig* before = &live.current();
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        pools.push_back(pool_spec("b", "198.19.0.20", "2000-2999"));
        rules.push_back({"198.18.1.0/24", "b"});
    });
    EXPECT_NE(&live.current(), before) << "a change builds a new snapshot";
    EXPECT_EQ(live.published()->load(), &live.current());
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(seen, &live.current());
    ASSERT_EQ(live.pools().size(), 2u);
    EXPECT_EQ(live.pools()[1].name, "b");
    ASSERT_EQ(live.rules().size(), 2u);
    EXPECT_EQ(live.rules()[1].pool, "b");
    const NatConfig& now = live.current();
    ASSERT_EQ(now.pools.size(), 2u);
    EXPECT_EQ(now.pools[1].addresses, std::vector<uint32_t>{ip("198.19.0.20")});
    EXPECT_EQ(now.pools[1].port_min, 2000);
    EXPECT_EQ(now.pools[1].port_max, 2999);
    ASSERT_NE(now.pool_for_source(ip("198.18.1.5")), nullptr);
    EXPECT_EQ(now.pool_for_source(ip("198.18.1.5"))->name, "b");
    // The daemon's own copy follows (save writes it; stats read it).
    EXPECT_EQ(cfg.pools.size(), 2u);
    EXPECT_EQ(cfg.nat.pools.size(), 2u);
    EXPECT_EQ(live.find_pool("b"), 1);
    EXPECT_EQ(live.find_pool("lab"), 0);
    EXPECT_EQ(live.find_pool("nope"), -1);

    const NatConfig* second = &live.current();
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) { pools[0].policy = "strict"; });
    EXPECT_NE(&live.current(), second);
    EXPECT_EQ(live.published()->load(), &live.current());
    EXPECT_EQ(live.current().pools[0].policy, Policy::Strict);
    EXPECT_EQ(live.pools()[0].policy, "strict");
    EXPECT_EQ(changes, 2);
    EXPECT_EQ(seen, &live.current());
}

TEST(LiveConfig, InvalidChangeLeavesEverythingUnchanged) {
    DaemonConfig cfg = daemon_config(2,
                                     {pool_spec("lab", "198.19.0.10-198.19.0.11"), pool_spec("guests", "198.19.0.20")},
                                     {{"198.18.0.0/25", "lab"}, {"198.18.0.128/25", "guests"}});
    LiveConfig live(cfg);
    int changes = 0;
    live.set_on_change([&](const NatConfig&) { ++changes; });

    struct Case {
        const char* what;
        LiveConfig::Change change;
        const char* message_part;  // the builder's message names the problem
    };
    const std::vector<Case> cases = {
        {"address already in another pool",
         [](auto& pools, auto&) { pools.push_back(pool_spec("dup", "198.19.0.11")); }, "already in pool 'lab'"},
        {"rule to a missing pool", [](auto&, auto& rules) { rules.push_back({"198.18.1.0/24", "nope"}); },
         "no pool named 'nope'"},
        {"port range backwards", [](auto& pools, auto&) { pools[0].ports = "2000-1000"; }, "port range"},
        {"fewer ports than workers", [](auto& pools, auto&) { pools[1].ports = "5000-5000"; }, "fewer ports"},
        {"prefix with host bits", [](auto&, auto& rules) { rules[0].prefix = "198.18.0.1/24"; }, "beyond the prefix"},
        {"same prefix twice", [](auto&, auto& rules) { rules.push_back({"198.18.0.0/25", "guests"}); },
         "already has a rule"},
        {"two live pools with one name", [](auto& pools, auto&) { pools.push_back(pool_spec("lab", "198.19.0.30")); },
         "defined twice"},
        {"zero timeout", [](auto& pools, auto&) { pools[0].timeouts.udp = 0; }, "timeout udp"},
        {"the change itself refuses", [](auto&, auto&) { throw ConfigError("refused by the change"); },
         "refused by the change"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const std::string pools_before = describe(live.pools());
        const std::string rules_before = describe(live.rules());
        const NatConfig* current_before = &live.current();
        const NatConfig* published_before = live.published()->load();
        try {
            live.apply(c.change);
            ADD_FAILURE() << "the change was accepted";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
        }
        EXPECT_EQ(describe(live.pools()), pools_before);
        EXPECT_EQ(describe(live.rules()), rules_before);
        EXPECT_EQ(&live.current(), current_before);
        EXPECT_EQ(live.published()->load(), published_before);
        EXPECT_EQ(live.current().pools.size(), 2u);
        EXPECT_EQ(cfg.nat.pools.size(), 2u);
        EXPECT_EQ(changes, 0);
    }

    // Any other exception from the change (the API's own errors) also changes nothing.
    const std::string pools_before = describe(live.pools());
    EXPECT_THROW(live.apply([](auto& pools, auto&) {
        pools[0].addresses = "198.19.0.10";
        throw ControlError("not_found", "no such address");
    }),
                 ControlError);
    EXPECT_EQ(describe(live.pools()), pools_before);
    EXPECT_EQ(changes, 0);

    // And a valid change still goes through afterwards.
    live.apply([](auto& pools, auto&) { pools[1].ports = "5000-5001"; });
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(live.current().pools[1].port_max, 5001);
}

// The port state of a snapshot is built by LiveConfig (the control thread), one index per
// worker; a worker adopts it by pointer, and an address keeps its state across changes.
TEST(LiveConfig, PortStateIsBuiltOnTheControlThreadAndAdoptedByPointer) {
    DaemonConfig cfg = daemon_config(2, {pool_spec("lab", "198.19.0.10")}, {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);
    ASSERT_EQ(live.current().port_state.size(), 2u);
    const PortEntry* lab0 = live.current().port_state[0]->find(htonl(ip("198.19.0.10")));
    ASSERT_NE(lab0, nullptr);
    AddressPorts* lab_state = lab0->ports;

    // A /20 pool added live: 4,096 addresses' state, built here, for both workers.
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        pools.push_back(pool_spec("big", "198.18.192.0/20"));
        rules.push_back({"198.18.1.0/24", "big"});
    });
    const NatConfig& now = live.current();
    ASSERT_EQ(now.port_state.size(), 2u);
    for (uint16_t w = 0; w < 2; ++w) {
        EXPECT_EQ(now.port_state[w]->size(), 4097u) << "worker " << w;
        const PortEntry* e = now.port_state[w]->find(htonl(ip("198.18.207.255")));
        ASSERT_NE(e, nullptr);
        EXPECT_FALSE(e->draining);
        EXPECT_EQ(e->hi - e->lo, 64512u / 2);
    }
    // The existing address kept its state (its sessions keep their ports).
    EXPECT_EQ(now.port_state[0]->find(htonl(ip("198.19.0.10")))->ports, lab_state);

    // A worker adopting the snapshot uses exactly that index: nothing is built on its thread.
    WorkerParams wp;
    wp.worker_id = 1;
    wp.session_capacity = 1024;
    wp.host_capacity = 64;
    wp.table_prefix = "pstate_";
    NatWorker worker(&now, wp);
    EXPECT_EQ(worker.ports().index(), now.port_state[1].get());
    EXPECT_EQ(worker.ports().partition_size(htonl(ip("198.18.200.1"))), 64512u / 2);

    // Removing the pool: its addresses leave the next snapshots (no session used them).
    live.set_address_in_use([](uint32_t) { return false; });
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        pools[1].retired = true;
        for (uint32_t a : parse_address_list(pools[1].addresses)) pools[1].draining.push_back(a);
        pools[1].addresses.clear();
        std::erase_if(rules, [](const RuleSpec& r) { return r.pool == "big"; });
    });
    EXPECT_EQ(live.current().port_state[0]->size(), 1u);
    worker.set_config(&live.current());
    EXPECT_EQ(worker.ports().index(), live.current().port_state[1].get());
    EXPECT_FALSE(worker.ports().has_address(htonl(ip("198.18.200.1"))));
}

// A pool whose port state would exceed dataplane.port_state_mb is refused with a message naming
// the option, and nothing changes; from the config file alike.
TEST(LiveConfig, PortStateBeyondTheBudgetIsRefusedAndChangesNothing) {
    DaemonConfig cfg = daemon_config(1, {pool_spec("lab", "198.19.0.10")}, {{"198.18.0.0/24", "lab"}});
    cfg.port_state_mb = 64;  // about 2,700 addresses
    LiveConfig live(cfg);
    const NatConfig* before = &live.current();
    const std::string pools_before = describe(live.pools());
    try {
        live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) {
            pools.push_back(pool_spec("huge", "198.18.192.0/20"));
        });
        FAIL() << "a 4,096-address pool fitted in 64 MiB";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("dataplane.port_state_mb"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("4097 addresses"), std::string::npos) << e.what();
    }
    EXPECT_EQ(&live.current(), before);
    EXPECT_EQ(describe(live.pools()), pools_before);
    EXPECT_EQ(live.current().port_state[0]->size(), 1u);
    // What fits still applies.
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) {
        pools.push_back(pool_spec("fits", "198.18.192.0/22"));
    });
    EXPECT_EQ(live.current().port_state[0]->size(), 1025u);

    // The default budget holds a /16 (65,536 addresses at 24 KiB) and refuses a /15.
    NatConfig c16 = build_nat_config(4, {pool_spec("p", "198.18.0.0/16")}, {});
    EXPECT_NO_THROW(check_port_state_budget(c16, DaemonConfig{}.port_state_mb));
    EXPECT_LE(PortStateStore::bytes_per_address(4), 25u * 1024);
    NatConfig c15 = build_nat_config(1, {pool_spec("p", "198.18.0.0/16"), pool_spec("q", "198.19.0.0/16")}, {});
    EXPECT_THROW(check_port_state_budget(c15, DaemonConfig{}.port_state_mb), ConfigError);
}

TEST(LiveConfig, WithoutAnAddressPredicateNothingIsPruned) {
    PoolSpec lab = pool_spec("lab", "198.19.0.10");
    lab.draining = {ip("198.19.0.12")};
    PoolSpec gone = pool_spec("gone", "198.19.0.20");
    gone.retired = true;
    gone.draining = {ip("198.19.0.20")};
    DaemonConfig cfg = daemon_config(1, {lab, gone}, {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);
    live.apply([](auto&, auto&) {});
    ASSERT_EQ(live.pools().size(), 2u);
    EXPECT_EQ(live.pools()[0].draining, std::vector<uint32_t>{ip("198.19.0.12")});
    EXPECT_TRUE(live.pools()[1].retired);
}

TEST(LiveConfig, PruneForgetsDrainedAddressesAndTrailingRetiredPools) {
    PoolSpec lab = pool_spec("lab", "198.19.0.10");
    lab.draining = {ip("198.19.0.12"), ip("198.19.0.13")};
    PoolSpec middle = pool_spec("middle", "198.19.0.30");
    middle.retired = true;
    middle.draining = {ip("198.19.0.30")};
    PoolSpec other = pool_spec("other", "198.19.0.40");
    PoolSpec tail = pool_spec("tail", "198.19.0.20");
    tail.retired = true;
    tail.draining = {ip("198.19.0.20")};
    DaemonConfig cfg = daemon_config(1, {lab, middle, other, tail}, {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);

    // The predicate gets network byte order: keep the set in that order.
    std::set<uint32_t> busy = {htonl(ip("198.19.0.12")), htonl(ip("198.19.0.13")), htonl(ip("198.19.0.30")),
                               htonl(ip("198.19.0.20"))};
    live.set_address_in_use([&](uint32_t a) { return busy.count(a) != 0; });

    // Everything still in use: everything stays.
    live.apply([](auto&, auto&) {});
    ASSERT_EQ(live.pools().size(), 4u);
    EXPECT_EQ(live.pools()[0].draining.size(), 2u);
    EXPECT_EQ(live.pools()[3].draining, std::vector<uint32_t>{ip("198.19.0.20")});
    EXPECT_EQ(live.current().pools.size(), 4u);

    // Only .13 still held: .12 is forgotten, the trailing retired pool disappears, the retired
    // pool in the middle stays (its slot is kept until a new pool needs it) with nothing draining.
    busy = {htonl(ip("198.19.0.13"))};
    live.apply([](auto&, auto&) {});
    ASSERT_EQ(live.pools().size(), 3u);
    EXPECT_EQ(live.pools()[0].draining, std::vector<uint32_t>{ip("198.19.0.13")});
    EXPECT_EQ(live.pools()[1].name, "middle");
    EXPECT_TRUE(live.pools()[1].retired);
    EXPECT_TRUE(live.pools()[1].draining.empty());
    EXPECT_EQ(live.pools()[2].name, "other");
    ASSERT_EQ(live.current().pools.size(), 3u);
    EXPECT_EQ(live.current().pools[0].draining, std::vector<uint32_t>{ip("198.19.0.13")});
    EXPECT_EQ(arp_addresses(live.current()),
              (std::vector<uint32_t>{ip("198.19.0.10"), ip("198.19.0.13"), ip("198.19.0.40")}));

    // Nothing held: the last drained address goes too.
    busy.clear();
    live.apply([](auto&, auto&) {});
    EXPECT_TRUE(live.pools()[0].draining.empty());
    EXPECT_EQ(live.pools().size(), 3u);
}

TEST(LiveConfig, RetiredTrailingPoolDisappearsInTheApplyThatDrainsIt) {
    DaemonConfig cfg = daemon_config(1, {pool_spec("lab", "198.19.0.10"), pool_spec("b", "198.19.0.20")},
                                     {{"198.18.0.0/24", "lab"}, {"198.18.1.0/24", "b"}});
    LiveConfig live(cfg);
    bool in_use = true;
    live.set_address_in_use([&](uint32_t) { return in_use; });
    auto retire_b = [](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        pools[1].retired = true;
        pools[1].draining = parse_address_list(pools[1].addresses);
        std::erase_if(rules, [](const RuleSpec& r) { return r.pool == "b"; });
    };
    live.apply(retire_b);
    ASSERT_EQ(live.pools().size(), 2u) << "still in use: kept, retired";
    EXPECT_TRUE(live.pools()[1].retired);
    EXPECT_TRUE(live.current().pools[1].retired);
    EXPECT_TRUE(live.current().pools[1].addresses.empty());
    EXPECT_EQ(live.current().pools[1].draining, std::vector<uint32_t>{ip("198.19.0.20")});
    EXPECT_EQ(live.find_pool("b"), -1);

    in_use = false;
    live.apply([](auto&, auto&) {});
    EXPECT_EQ(live.pools().size(), 1u);
    EXPECT_EQ(live.current().pools.size(), 1u);
}

// kMaxPools pools p0..p63, each with one address 10.0.1.i.
std::vector<PoolSpec> full_pool_list() {
    std::vector<PoolSpec> pools;
    for (std::size_t i = 0; i < kMaxPools; ++i)
        pools.push_back(pool_spec("p" + std::to_string(i), "10.0.1." + std::to_string(i)));
    return pools;
}

TEST(LiveConfig, NewPoolTakesADrainedRetiredSlotWhenTheListIsFull) {
    static_assert(kMaxPools == 64);
    DaemonConfig cfg = daemon_config(1, full_pool_list(), {{"198.18.0.0/24", "p0"}});
    LiveConfig live(cfg);
    std::set<uint32_t> busy;
    live.set_address_in_use([&](uint32_t a) { return busy.count(a) != 0; });
    const auto add_p64 = [](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        pools.push_back(pool_spec("p64", "10.0.2.64"));
        rules.push_back({"198.18.1.0/24", "p64"});
    };

    // No retired slot at all: the 65th pool is refused, naming the limit.
    try {
        live.apply(add_p64);
        ADD_FAILURE() << "a 65th pool was accepted";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("at most 64 pools"), std::string::npos) << e.what();
    }
    EXPECT_EQ(live.pools().size(), kMaxPools);

    // p5 deleted while its address is still in use: its slot is not free yet.
    busy.insert(htonl(ip("10.0.1.5")));
    live.apply([](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) {
        pools[5].retired = true;
        pools[5].draining = {ip("10.0.1.5")};
    });
    const NatConfig* before = &live.current();
    try {
        live.apply(add_p64);
        ADD_FAILURE() << "a 65th pool was accepted while p5 still drains";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("at most 64 pools, counting deleted pools"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(&live.current(), before);
    ASSERT_EQ(live.pools().size(), kMaxPools);
    EXPECT_EQ(live.pools()[5].name, "p5");
    EXPECT_TRUE(live.pools()[5].retired);
    EXPECT_EQ(live.find_pool("p64"), -1);

    // p5 drained: p64 takes slot 5.
    busy.clear();
    live.apply(add_p64);
    ASSERT_EQ(live.pools().size(), kMaxPools);
    EXPECT_EQ(live.pools()[5].name, "p64");
    EXPECT_FALSE(live.pools()[5].retired);
    EXPECT_EQ(live.find_pool("p64"), 5);
    const Pool& slot = live.current().pools[5];
    EXPECT_EQ(slot.id, 5);
    EXPECT_EQ(slot.name, "p64");
    EXPECT_FALSE(slot.retired);
    EXPECT_EQ(slot.addresses, std::vector<uint32_t>{ip("10.0.2.64")});
    ASSERT_NE(live.current().pool_for_source(ip("198.18.1.1")), nullptr);
    EXPECT_EQ(live.current().pool_for_source(ip("198.18.1.1"))->id, 5);
    EXPECT_EQ(live.pools()[63].name, "p63") << "the other slots keep their pools";

    // Full again and nothing retired: refused.
    EXPECT_THROW(live.apply([](auto& pools, auto&) { pools.push_back(pool_spec("p65", "10.0.2.65")); }),
                 ConfigError);
    EXPECT_EQ(live.pools().size(), kMaxPools);
}

// =============================================================================================
// ControlApi against real engines
// =============================================================================================

const uint32_t kServer = ip("198.19.0.100");
uint32_t host(int n) { return ip("198.18.0.0") + static_cast<uint32_t>(n); }

// The test's stand-in for a worker lcore: while it runs, the only thread that touches its
// engine. Each pass, like worker_main: adopt the published snapshot, answer the mailbox, then
// (the test's addition) run the jobs queued with run(), report a quiescent state, sleep 100 us.
class EngineThread {
public:
    EngineThread(NatWorker& engine, WorkerMailbox& mailbox, std::atomic<const NatConfig*>* published,
                 rte_rcu_qsbr* rcu, const std::atomic<uint32_t>& clock)
        : engine_(engine), mailbox_(mailbox), published_(published), rcu_(rcu), clock_(clock) {}
    ~EngineThread() { stop(); }
    EngineThread(const EngineThread&) = delete;
    EngineThread& operator=(const EngineThread&) = delete;

    void start() {
        stop_.store(false);
        thread_ = std::thread([this] { loop(); });
    }
    void stop() {
        if (!thread_.joinable()) return;
        stop_.store(true);
        thread_.join();
    }

    // Runs f(engine) on the worker thread (or here when it is stopped) and returns its result.
    template <typename F>
    auto run(F f) -> decltype(f(std::declval<NatWorker&>())) {
        using R = decltype(f(engine_));
        if (!thread_.joinable()) {
            adopt();
            return f(engine_);
        }
        std::packaged_task<R()> task([&] { return f(engine_); });
        std::future<R> result = task.get_future();
        {
            std::lock_guard lock(mutex_);
            jobs_.push_back([&task] { task(); });
        }
        return result.get();
    }

private:
    void loop() {
        const uint16_t id = engine_.id();
        if (rcu_ != nullptr) {
            rte_rcu_qsbr_thread_register(rcu_, id);
            rte_rcu_qsbr_thread_online(rcu_, id);
        }
        while (!stop_.load(std::memory_order_acquire)) {
            adopt();
            serve_mailbox();
            run_jobs();
            if (rcu_ != nullptr) rte_rcu_qsbr_quiescent(rcu_, id);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        if (rcu_ != nullptr) {
            rte_rcu_qsbr_thread_offline(rcu_, id);
            rte_rcu_qsbr_thread_unregister(rcu_, id);
        }
    }
    void adopt() {
        const NatConfig* c = published_->load(std::memory_order_acquire);
        if (c != nullptr && c != engine_.config()) engine_.set_config(c);
    }
    // As dataplane/worker_loop.cpp's Loop::serve_mailbox.
    void serve_mailbox() {
        WorkerMailbox& mb = mailbox_;
        const uint32_t posted = mb.posted.load(std::memory_order_acquire);
        if (posted == mb.done.load(std::memory_order_relaxed)) return;
        const uint32_t now = clock_.load();
        if (mb.op == WorkerMailbox::Op::Query) {
            const uint32_t max = std::min(mb.max, WorkerMailbox::kMaxRecords);
            mb.matched = engine_.query_sessions(mb.match, mb.skip, mb.records.data(), max, &mb.copied, now);
        } else {
            mb.matched = engine_.flush_sessions(mb.match, now);
            mb.copied = 0;
        }
        mb.done.store(posted, std::memory_order_release);
    }
    void run_jobs() {
        std::vector<std::function<void()>> jobs;
        {
            std::lock_guard lock(mutex_);
            jobs.swap(jobs_);
        }
        for (auto& job : jobs) job();
    }

    NatWorker& engine_;
    WorkerMailbox& mailbox_;
    std::atomic<const NatConfig*>* published_;
    rte_rcu_qsbr* rcu_;
    const std::atomic<uint32_t>& clock_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::function<void()>> jobs_;
    std::thread thread_;
};

class TempDir {
public:
    TempDir() {
        static int counter = 0;
        dir_ = fs::temp_directory_path() /
               ("snatgw-capi-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::create_directories(dir_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(path(name)) << text;
        return path(name);
    }

private:
    fs::path dir_;
};

CommandLine parse_args(std::vector<std::string> args) {
    args.insert(args.begin(), "snatgw");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string endpoint(uint32_t addr, uint16_t port) { return format_endpoint(addr, port); }

// Two workers; pool "lab" for 198.18.0.0/25, pool "guests" (strict) for 198.18.0.128/25.
const char kConf[] =
    "[dataplane]\n"
    "workers = 2\n"
    "[inside]\n"
    "device = net_af_xdp0,iface=snatgw-in\n"
    "address = 198.18.0.1/24\n"
    "[outside]\n"
    "device = net_af_xdp1,iface=snatgw-out\n"
    "address = 198.19.0.1/24\n"
    "[pool.lab]\n"
    "addresses = 198.19.0.10-198.19.0.11\n"
    "[pool.guests]\n"
    "addresses = 198.19.0.20\n"
    "policy = strict\n"
    "[nat]\n"
    "rule = 198.18.0.0/25 lab\n"
    "rule = 198.18.0.128/25 guests\n";

constexpr uint32_t kTrafficMs = 1000;  // when the traffic is sent
constexpr uint32_t kQueryMs = 3500;    // when the queries are made: idle_ms = 2500

struct Mapped {
    uint32_t addr = 0;
    uint16_t port = 0;
};

class ControlApiEngines : public ::testing::Test {
protected:
    static constexpr uint16_t kWorkers = 2;

    void SetUp() override {
        config_ = parse_args({"--config", dir_.write("snatgw.conf", kConf)}).config;
        ASSERT_EQ(config_.workers, kWorkers);
        live_ = std::make_unique<LiveConfig>(config_);
        rcu_ = static_cast<rte_rcu_qsbr*>(
            rte_zmalloc("capi_test_rcu", rte_rcu_qsbr_get_memsize(kWorkers), RTE_CACHE_LINE_SIZE));
        ASSERT_NE(rcu_, nullptr);
        ASSERT_EQ(rte_rcu_qsbr_init(rcu_, kWorkers), 0);
        live_->set_rcu(rcu_);

        static std::atomic<uint32_t> instance{0};
        ControlApiDeps deps;
        deps.config = &config_;
        deps.live = live_.get();
        deps.stats = [] { return json{{"stats", "here"}}; };
        deps.mailbox_timeout_ms = 5000;
        for (uint16_t w = 0; w < kWorkers; ++w) {
            WorkerParams wp;
            wp.worker_id = w;
            wp.session_capacity = 4096;
            wp.host_capacity = 1024;
            wp.seed = 777 + w;
            wp.table_prefix = "capi";
            wp.table_prefix += std::to_string(instance++);
            engines_.push_back(std::make_unique<NatWorker>(&live_->current(), wp));
            mailboxes_.push_back(std::make_unique<WorkerMailbox>());
            deps.engines.push_back(engines_.back().get());
            deps.mailboxes.push_back(mailboxes_.back().get());
        }
        api_ = std::make_unique<ControlApi>(std::move(deps));
        live_->set_address_in_use([api = api_.get()](uint32_t a) { return api->address_in_use(a); });
        for (uint16_t w = 0; w < kWorkers; ++w) {
            threads_.push_back(std::make_unique<EngineThread>(*engines_[w], *mailboxes_[w], live_->published(),
                                                              rcu_, clock_));
            threads_.back()->start();
        }
    }

    void TearDown() override {
        threads_.clear();  // joins them
        if (live_) live_->set_rcu(nullptr);
        rte_free(rcu_);
    }

    // --- requests ---
    json call(const std::string& command, json args = json::object()) {
        return api_->handle(validate_request(json{{"version", 1}, {"command", command}, {"args", args}}));
    }
    // The error code of a request ("ok" when it succeeded); the message lands in last_message_.
    std::string code_of(const std::string& command, json args = json::object()) {
        try {
            call(command, std::move(args));
            return "ok";
        } catch (const ControlError& e) {
            last_message_ = e.what();
            return e.code;
        }
    }
    uint64_t count(json filter) {
        filter["count_only"] = true;
        const json r = call("sessions", filter);
        EXPECT_FALSE(r.contains("sessions")) << "count_only: only the total";
        return r.at("total").get<uint64_t>();
    }
    json pool_entry(const std::string& name) {
        const json all = call("pools");  // (a named result: the loop below refers into it)
        for (const json& p : all.at("pools"))
            if (p.at("name") == name) return p;
        return json();
    }
    // Ports in use of one protocol on one worker, over every address of a `pools` entry.
    static uint64_t ports_in_use(const json& pool, const char* proto, int worker) {
        uint64_t n = 0;
        for (const auto& [addr, per] : pool.at("ports_in_use").items()) n += per.at(proto).at(worker).get<uint64_t>();
        return n;
    }
    std::size_t table_size(uint16_t w) {
        return threads_[w]->run([](NatWorker& e) { return static_cast<std::size_t>(e.sessions().size()); });
    }

    // --- traffic, always on the engine's own thread ---
    NatOutcome send(uint16_t w, Side side, std::vector<uint8_t> frame) {
        const uint32_t now = clock_.load();
        return threads_[w]->run([&](NatWorker& e) {
            Frame f{frame.data(), static_cast<uint32_t>(frame.size())};
            FrameResult r;
            e.process(side, &f, &r, 1, now);
            return NatOutcome{r, frame};
        });
    }
    Mapped forwarded(const NatOutcome& o) {
        EXPECT_EQ(o.result.verdict, Verdict::Forward);
        const auto d = decode(o.frame);
        if (o.result.verdict != Verdict::Forward || !d) return {};
        return {d->src, d->sport};
    }
    Mapped udp_out(uint16_t w, uint32_t src, uint16_t sport, uint16_t dport = 53) {
        return forwarded(send(w, Side::Inside, PacketBuilder().eth().ipv4(src, kServer).udp(sport, dport).payload(16).build()));
    }
    bool udp_reply_reaches(uint16_t w, Mapped m, uint32_t inside, uint16_t sport = 53) {
        const NatOutcome o =
            send(w, Side::Outside, PacketBuilder().eth().ipv4(kServer, m.addr).udp(sport, m.port).payload(16).build());
        const auto d = decode(o.frame);
        return o.result.verdict == Verdict::Forward && d && d->dst == inside;
    }
    Mapped tcp_syn(uint16_t w, uint32_t src, uint16_t sport) {
        return forwarded(send(w, Side::Inside,
                              PacketBuilder().eth().ipv4(src, kServer).tcp(sport, 80, 1000, 0, TCP_SYN, 64240).build()));
    }
    Mapped tcp_established(uint16_t w, uint32_t src, uint16_t sport) {
        const Mapped m = tcp_syn(w, src, sport);
        forwarded(send(w, Side::Outside,
                       PacketBuilder().eth().ipv4(kServer, m.addr).tcp(80, m.port, 5000, 1001, TCP_SYN | TCP_ACK, 64240).build()));
        forwarded(send(w, Side::Inside,
                       PacketBuilder().eth().ipv4(src, kServer).tcp(sport, 80, 1001, 5001, TCP_ACK, 64240).build()));
        return m;
    }
    void icmp_echo(uint16_t w, uint32_t src, uint16_t id) {
        forwarded(send(w, Side::Inside,
                       PacketBuilder().eth().ipv4(src, kServer).icmp_echo(ICMP_TYPE_ECHO_REQUEST, id, 1).payload(8).build()));
    }

    // The standard traffic: 11 sessions.
    //   worker 0: lab   udp .11:4000 .12:4000 .13:4000, tcp .11:40000 syn_sent, tcp .12:40001 established
    //             guests udp .140:4000, icmp .140 id 77
    //   worker 1: lab   udp .14:4000 .15:4000
    //             guests udp .141:4000, tcp .141:40002 established
    void load_traffic() {
        clock_.store(kTrafficMs);
        udp11_ = udp_out(0, host(11), 4000);
        udp_out(0, host(12), 4000);
        udp_out(0, host(13), 4000);
        tcp_syn(0, host(11), 40000);
        tcp_established(0, host(12), 40001);
        guest_udp140_ = udp_out(0, host(140), 4000);
        icmp_echo(0, host(140), 77);
        udp_out(1, host(14), 4000);
        udp_out(1, host(15), 4000);
        udp_out(1, host(141), 4000);
        tcp_established(1, host(141), 40002);
        clock_.store(kQueryMs);
        ASSERT_EQ(table_size(0), 7u);
        ASSERT_EQ(table_size(1), 4u);
        ASSERT_EQ(guest_udp140_.addr, ip("198.19.0.20"));
        ASSERT_TRUE(udp11_.addr == ip("198.19.0.10") || udp11_.addr == ip("198.19.0.11"));
    }

    TempDir dir_;
    DaemonConfig config_;
    std::unique_ptr<LiveConfig> live_;
    rte_rcu_qsbr* rcu_ = nullptr;
    std::vector<std::unique_ptr<NatWorker>> engines_;
    std::vector<std::unique_ptr<WorkerMailbox>> mailboxes_;
    std::unique_ptr<ControlApi> api_;
    std::atomic<uint32_t> clock_{kTrafficMs};
    std::vector<std::unique_ptr<EngineThread>> threads_;
    std::string last_message_;
    Mapped udp11_, guest_udp140_;
};

TEST_F(ControlApiEngines, VersionStatsAndUnknownCommand) {
    EXPECT_EQ(call("version"), (json{{"daemon", "snatgw"}, {"version", "0.1.0"}, {"protocol", 1}}));
    EXPECT_EQ(call("stats"), (json{{"stats", "here"}}));
    ControlRequest r;
    r.command = "no.such";
    try {
        api_->handle(r);
        ADD_FAILURE() << "an unknown command was executed";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.code, "unknown_command");
    }
}

TEST_F(ControlApiEngines, PoolsShowsAddressesRulesAndPortsInUse) {
    load_traffic();
    const json pools = call("pools").at("pools");
    ASSERT_EQ(pools.size(), 2u);
    const json& lab = pools[0];
    EXPECT_EQ(lab.at("name"), "lab");
    EXPECT_EQ(lab.at("id"), 0);
    EXPECT_EQ(lab.at("deleted"), false);
    EXPECT_EQ(lab.at("addresses"), (json{"198.19.0.10", "198.19.0.11"}));
    EXPECT_EQ(lab.at("draining"), json::array());
    EXPECT_EQ(lab.at("ports"), "1024-65535");
    EXPECT_EQ(lab.at("policy"), "liberal");
    EXPECT_EQ(lab.at("rules"), (json{"198.18.0.0/25"}));
    EXPECT_EQ(lab.at("max_sessions_per_host"), 0);
    EXPECT_EQ(lab.at("timeouts"), (json{{"tcp_established", 7440}, {"tcp_transitory", 240}, {"tcp_syn_sent", 120}, {"tcp_syn_recv", 60}, {"udp", 120},
                                        {"icmp", 60}, {"quarantine", 120}, {"linger", 2}}));
    ASSERT_EQ(lab.at("ports_in_use").size(), 2u);
    ASSERT_TRUE(lab.at("ports_in_use").contains("198.19.0.10"));
    EXPECT_EQ(lab.at("ports_in_use").at("198.19.0.10").at("udp").size(), kWorkers) << "one count per worker";
    EXPECT_EQ(ports_in_use(lab, "udp", 0), 3u);
    EXPECT_EQ(ports_in_use(lab, "udp", 1), 2u);
    EXPECT_EQ(ports_in_use(lab, "tcp", 0), 2u);
    EXPECT_EQ(ports_in_use(lab, "tcp", 1), 0u);
    EXPECT_EQ(ports_in_use(lab, "icmp", 0), 0u);

    const json& guests = pools[1];
    EXPECT_EQ(guests.at("name"), "guests");
    EXPECT_EQ(guests.at("id"), 1);
    EXPECT_EQ(guests.at("policy"), "strict");
    EXPECT_EQ(guests.at("addresses"), (json{"198.19.0.20"}));
    EXPECT_EQ(guests.at("rules"), (json{"198.18.0.128/25"}));
    EXPECT_EQ(guests.at("ports_in_use"),
              (json{{"198.19.0.20", {{"tcp", {0, 1}}, {"udp", {1, 1}}, {"icmp", {1, 0}}}}}));
}

TEST_F(ControlApiEngines, SessionsGivesEveryFieldOfASession) {
    load_traffic();
    const json r = call("sessions", {{"limit", 100}});
    EXPECT_EQ(r.at("total"), 11);
    EXPECT_EQ(r.at("offset"), 0);
    const json& list = r.at("sessions");
    ASSERT_EQ(list.size(), 11u);
    int seen = 0;
    for (const json& s : list) {
        EXPECT_EQ(s.at("idle_ms"), kQueryMs - kTrafficMs);
        EXPECT_EQ(s.at("remote").get<std::string>().rfind("198.19.0.100:", 0), 0u) << s;
        if (s.at("inside") == "198.18.0.11:4000") {
            ++seen;
            EXPECT_EQ(s.at("worker"), 0);
            EXPECT_EQ(s.at("proto"), "udp");
            EXPECT_EQ(s.at("state"), "udp");
            EXPECT_EQ(s.at("outside"), endpoint(udp11_.addr, udp11_.port));
            EXPECT_EQ(s.at("remote"), "198.19.0.100:53");
            EXPECT_EQ(s.at("pool"), "lab");
        } else if (s.at("inside") == "198.18.0.11:40000") {
            ++seen;
            EXPECT_EQ(s.at("proto"), "tcp");
            EXPECT_EQ(s.at("state"), "syn_sent");
            EXPECT_EQ(s.at("remote"), "198.19.0.100:80");
        } else if (s.at("inside") == "198.18.0.141:40002") {
            ++seen;
            EXPECT_EQ(s.at("worker"), 1);
            EXPECT_EQ(s.at("state"), "established");
            EXPECT_EQ(s.at("pool"), "guests");
            EXPECT_EQ(s.at("outside").get<std::string>().rfind("198.19.0.20:", 0), 0u);
        } else if (s.at("proto") == "icmp") {
            ++seen;
            EXPECT_EQ(s.at("state"), "icmp");
            EXPECT_EQ(s.at("inside").get<std::string>().rfind("198.18.0.140:", 0), 0u) << s;
            EXPECT_EQ(s.at("pool"), "guests");
        }
    }
    EXPECT_EQ(seen, 4);
}

TEST_F(ControlApiEngines, SessionFiltersCountExactly) {
    load_traffic();
    const std::string udp11_out = endpoint(udp11_.addr, udp11_.port);
    const std::vector<std::pair<json, uint64_t>> cases = {
        {json::object(), 11},
        {{{"worker", 0}}, 7},
        {{{"worker", 1}}, 4},
        {{{"pool", "lab"}}, 7},
        {{{"pool", "guests"}}, 4},
        {{{"proto", "udp"}}, 7},
        {{{"proto", "tcp"}}, 3},
        {{{"proto", "icmp"}}, 1},
        {{{"state", "established"}}, 2},
        {{{"state", "syn_sent"}}, 1},
        {{{"state", "time_wait"}}, 0},
        {{{"state", "udp"}}, 7},
        {{{"state", "icmp"}}, 1},
        {{{"inside", "198.18.0.11"}}, 2},
        {{{"inside", "198.18.0.11:4000"}}, 1},
        {{{"inside", "198.18.0.11:4001"}}, 0},
        {{{"inside", "198.18.0.140"}}, 2},
        {{{"remote", "198.19.0.100"}}, 11},
        {{{"remote", "198.19.0.100:53"}}, 7},
        {{{"remote", "198.19.0.100:80"}}, 3},
        {{{"remote", "198.19.0.99"}}, 0},
        {{{"outside", "198.19.0.20"}}, 4},
        {{{"outside", udp11_out}}, 1},
        {{{"pool", "lab"}, {"proto", "tcp"}}, 2},
        {{{"worker", 1}, {"proto", "udp"}}, 3},
        {{{"pool", "guests"}, {"state", "established"}}, 1},
        {{{"inside", "198.18.0.141"}, {"worker", 0}}, 0},
        {{{"inside", "198.18.0.12"}, {"proto", "tcp"}, {"state", "established"}, {"remote", "198.19.0.100:80"}}, 1},
    };
    for (const auto& [filter, expected] : cases) {
        EXPECT_EQ(count(filter), expected) << filter;
        // Listing gives the same number of sessions, each matching.
        const json r = call("sessions", filter);
        EXPECT_EQ(r.at("total"), expected) << filter;
        EXPECT_EQ(r.at("sessions").size(), expected) << filter;
        for (const json& s : r.at("sessions")) {
            if (filter.contains("proto")) {
                EXPECT_EQ(s.at("proto"), filter.at("proto")) << filter;
            }
            if (filter.contains("worker")) {
                EXPECT_EQ(s.at("worker"), filter.at("worker")) << filter;
            }
            if (filter.contains("pool")) {
                EXPECT_EQ(s.at("pool"), filter.at("pool")) << filter;
            }
        }
    }
}

TEST_F(ControlApiEngines, SessionFilterErrors) {
    load_traffic();
    EXPECT_EQ(code_of("sessions", {{"pool", "nope"}}), "not_found");
    EXPECT_EQ(code_of("sessions", {{"worker", 2}}), "bad_request") << "there are 2 workers";
    EXPECT_NE(last_message_.find("worker"), std::string::npos) << last_message_;
    EXPECT_EQ(code_of("sessions", {{"limit", 0}}), "bad_request");
    EXPECT_EQ(code_of("sessions", {{"limit", 10001}}), "bad_request");
    EXPECT_EQ(code_of("sessions", {{"proto", "udp"}, {"state", "established"}}), "bad_request");
    EXPECT_EQ(count(json::object()), 11u) << "errors change nothing";
}

TEST_F(ControlApiEngines, SessionsPagesThroughTheWorkersInOrder) {
    load_traffic();
    std::set<std::string> keys;
    std::vector<int> workers;
    for (uint32_t offset = 0; offset < 11; offset += 3) {
        const json r = call("sessions", {{"offset", offset}, {"limit", 3}});
        EXPECT_EQ(r.at("total"), 11);
        EXPECT_EQ(r.at("offset"), offset);
        EXPECT_EQ(r.at("sessions").size(), offset == 9 ? 2u : 3u) << "offset " << offset;
        for (const json& s : r.at("sessions")) {
            keys.insert(s.at("worker").dump() + s.at("proto").get<std::string>() + s.at("inside").get<std::string>() +
                        s.at("remote").get<std::string>());
            workers.push_back(s.at("worker").get<int>());
        }
    }
    EXPECT_EQ(keys.size(), 11u) << "every session once, none twice";
    EXPECT_TRUE(std::is_sorted(workers.begin(), workers.end())) << "worker 0's sessions, then worker 1's";

    // A page across the two workers: worker 0 has 7, so offset 5 limit 4 is 2 + 2.
    const json across = call("sessions", {{"offset", 5}, {"limit", 4}});
    ASSERT_EQ(across.at("sessions").size(), 4u);
    std::vector<int> w;
    for (const json& s : across.at("sessions")) w.push_back(s.at("worker").get<int>());
    EXPECT_EQ(w, (std::vector<int>{0, 0, 1, 1}));
    // Offset into worker 1 only.
    const json second = call("sessions", {{"offset", 9}, {"limit", 100}});
    ASSERT_EQ(second.at("sessions").size(), 2u);
    EXPECT_EQ(second.at("sessions")[0].at("worker"), 1);
    // Past the end.
    const json past = call("sessions", {{"offset", 11}});
    EXPECT_EQ(past.at("total"), 11);
    EXPECT_EQ(past.at("sessions").size(), 0u);
    // Paging a filtered list.
    const json udp = call("sessions", {{"proto", "udp"}, {"offset", 2}, {"limit", 2}});
    EXPECT_EQ(udp.at("total"), 7);
    ASSERT_EQ(udp.at("sessions").size(), 2u);
    for (const json& s : udp.at("sessions")) EXPECT_EQ(s.at("proto"), "udp");
    // The default limit is 100, enough for all.
    EXPECT_EQ(call("sessions").at("sessions").size(), 11u);
}

TEST_F(ControlApiEngines, CountOnlyGivesOnlyTheTotal) {
    load_traffic();
    const json r = call("sessions", {{"count_only", true}, {"pool", "lab"}});
    EXPECT_EQ(r, (json{{"total", 7}}));
    const json list = call("sessions", {{"count_only", false}, {"pool", "lab"}, {"limit", 1}});
    EXPECT_EQ(list.at("total"), 7);
    EXPECT_EQ(list.at("sessions").size(), 1u);
}

TEST_F(ControlApiEngines, FlushEndsExactlyTheMatchingSessions) {
    load_traffic();
    EXPECT_EQ(call("sessions.flush", {{"inside", "198.18.0.11"}}), (json{{"flushed", 2}}));
    EXPECT_EQ(table_size(0), 5u);
    EXPECT_EQ(table_size(1), 4u);
    EXPECT_EQ(count({{"inside", "198.18.0.11"}}), 0u);
    EXPECT_EQ(count(json::object()), 9u);
    // Their ports are released.
    const json lab = pool_entry("lab");
    EXPECT_EQ(ports_in_use(lab, "udp", 0), 2u);
    EXPECT_EQ(ports_in_use(lab, "tcp", 0), 1u);
    // A reply to the flushed mapping reaches nobody.
    EXPECT_FALSE(udp_reply_reaches(0, udp11_, host(11)));

    EXPECT_EQ(call("sessions.flush", {{"pool", "guests"}, {"worker", 1}}).at("flushed"), 2);
    EXPECT_EQ(table_size(0), 5u);
    EXPECT_EQ(table_size(1), 2u);
    EXPECT_EQ(count({{"pool", "guests"}}), 2u);

    EXPECT_EQ(call("sessions.flush", {{"state", "established"}}).at("flushed"), 1);
    EXPECT_EQ(table_size(0), 4u);
    EXPECT_EQ(call("sessions.flush", {{"remote", "198.19.0.99"}}).at("flushed"), 0);

    EXPECT_EQ(call("sessions.flush", {{"all", true}}).at("flushed"), 6);
    EXPECT_EQ(table_size(0), 0u);
    EXPECT_EQ(table_size(1), 0u);
    const uint64_t flushed = threads_[0]->run([](NatWorker& e) { return e.counters().sessions_flushed; }) +
                             threads_[1]->run([](NatWorker& e) { return e.counters().sessions_flushed; });
    EXPECT_EQ(flushed, 11u);
    EXPECT_EQ(ports_in_use(pool_entry("guests"), "udp", 0), 0u);
}

TEST_F(ControlApiEngines, FlushWithoutAFilterIsABadRequest) {
    load_traffic();
    // Refused by the schema...
    EXPECT_EQ(code_of("sessions.flush"), "bad_request");
    EXPECT_EQ(code_of("sessions.flush", {{"all", false}}), "bad_request");
    EXPECT_EQ(code_of("sessions.flush", {{"all", true}, {"proto", "udp"}}), "bad_request");
    // ...and by the handler itself, for a request that skipped validation.
    ControlRequest r;
    r.command = "sessions.flush";
    try {
        api_->handle(r);
        ADD_FAILURE() << "a flush without a filter was executed";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.code, "bad_request");
    }
    EXPECT_EQ(table_size(0), 7u);
    EXPECT_EQ(table_size(1), 4u);
}

TEST_F(ControlApiEngines, PoolAddIsSafeToRepeatAndConflictsWhenDifferent) {
    load_traffic();
    const json add = {{"name", "extra"},
                      {"addresses", "198.19.0.30"},
                      {"rules", {"198.18.1.0/24"}},
                      {"policy", "retrans-ok"},
                      {"timeouts", {{"udp", 30}}}};
    const json first = call("pool.add", add).at("pool");
    EXPECT_EQ(first.at("name"), "extra");
    EXPECT_EQ(first.at("id"), 2);
    EXPECT_EQ(first.at("deleted"), false);
    EXPECT_EQ(first.at("addresses"), (json{"198.19.0.30"}));
    EXPECT_EQ(first.at("draining"), json::array());
    EXPECT_EQ(first.at("rules"), (json{"198.18.1.0/24"}));
    EXPECT_EQ(first.at("policy"), "retrans-ok");
    EXPECT_EQ(first.at("ports"), "1024-65535");
    EXPECT_EQ(first.at("timeouts").at("udp"), 30);
    EXPECT_EQ(first.at("timeouts").at("tcp_established"), 7440);
    EXPECT_EQ(first.at("ports_in_use"),
              (json{{"198.19.0.30", {{"tcp", {0, 0}}, {"udp", {0, 0}}, {"icmp", {0, 0}}}}}));
    ASSERT_EQ(live_->pools().size(), 3u);
    EXPECT_EQ(live_->current().pools[2].policy, Policy::RetransOk);
    // Every worker uses the new snapshot when the request returns (grace period).
    for (const auto& e : engines_) EXPECT_EQ(e->config(), &live_->current());

    // New traffic from its prefix gets its address.
    clock_.store(kTrafficMs);
    EXPECT_EQ(udp_out(0, ip("198.18.1.5"), 4000).addr, ip("198.19.0.30"));
    clock_.store(kQueryMs);
    EXPECT_EQ(ports_in_use(pool_entry("extra"), "udp", 0), 1u);
    EXPECT_EQ(count({{"pool", "extra"}}), 1u);

    // The same again: fine, nothing changes.
    const NatConfig* before = &live_->current();
    const json again = call("pool.add", add).at("pool");
    EXPECT_EQ(again.at("name"), "extra");
    EXPECT_EQ(again.at("addresses"), (json{"198.19.0.30"}));
    EXPECT_EQ(&live_->current(), before) << "a repeated add publishes nothing";
    EXPECT_EQ(live_->pools().size(), 3u);

    // A different pool with the same name: conflict, nothing changes.
    for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
             {"addresses", "198.19.0.31"},
             {"policy", "strict"},
             {"ports", "2000-3000"},
             {"rules", json::array()},
             {"timeouts", {{"udp", 31}}},
             {"max_sessions_per_host", 3}}) {
        json different = add;
        different[key] = value;
        EXPECT_EQ(code_of("pool.add", different), "conflict") << key;
        EXPECT_NE(last_message_.find("extra"), std::string::npos) << last_message_;
    }
    EXPECT_EQ(&live_->current(), before);
    EXPECT_EQ(live_->pools().size(), 3u);
    EXPECT_EQ(live_->pools()[2].addresses, "198.19.0.30");
}

TEST_F(ControlApiEngines, PoolAddThatWouldBeInvalidChangesNothing) {
    const NatConfig* before = &live_->current();
    const std::string pools_before = describe(live_->pools());
    const std::string rules_before = describe(live_->rules());

    EXPECT_EQ(code_of("pool.add", {{"name", "clash"}, {"addresses", "198.19.0.11-198.19.0.12"}}), "invalid_config");
    EXPECT_NE(last_message_.find("198.19.0.11"), std::string::npos) << last_message_;
    EXPECT_NE(last_message_.find("lab"), std::string::npos) << last_message_;
    EXPECT_EQ(code_of("pool.add", {{"name", "clash"}, {"addresses", "198.19.0.30"}, {"rules", {"198.18.0.0/25"}}}),
              "invalid_config");
    EXPECT_NE(last_message_.find("already has a rule"), std::string::npos) << last_message_;
    EXPECT_EQ(code_of("pool.add", {{"name", "clash"}, {"addresses", "198.19.0.30"}, {"ports", "7000-7000"}}),
              "invalid_config")
        << "one port for two workers";

    EXPECT_EQ(&live_->current(), before);
    EXPECT_EQ(live_->published()->load(), before);
    EXPECT_EQ(describe(live_->pools()), pools_before);
    EXPECT_EQ(describe(live_->rules()), rules_before);
    EXPECT_EQ(live_->find_pool("clash"), -1);
    EXPECT_EQ(call("pools").at("pools").size(), 2u);
}

TEST_F(ControlApiEngines, PoolSetAddsAndDrainsAddresses) {
    load_traffic();
    const json added = call("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.12"}}).at("pool");
    EXPECT_EQ(added.at("addresses"), (json{"198.19.0.10", "198.19.0.11", "198.19.0.12"}));
    EXPECT_EQ(live_->pools()[0].addresses, "198.19.0.10-198.19.0.12");
    EXPECT_EQ(live_->current().pools[0].addresses.size(), 3u);
    for (const auto& e : engines_) EXPECT_EQ(e->config(), &live_->current());

    // Delete the address host .11's UDP session uses: it drains while that session holds it.
    const std::string used = format_ipv4(udp11_.addr);
    const json after = call("pool.set", {{"name", "lab"}, {"del_addresses", used}}).at("pool");
    EXPECT_EQ(after.at("draining"), (json{used}));
    for (const json& a : after.at("addresses")) EXPECT_NE(a, used);
    EXPECT_EQ(after.at("addresses").size(), 2u);
    EXPECT_TRUE(after.at("ports_in_use").contains(used)) << "a draining address still shows its ports";
    for (uint16_t w = 0; w < kWorkers; ++w)
        EXPECT_TRUE(threads_[w]->run([&](NatWorker& e) { return e.ports().draining(htonl(udp11_.addr)); }));
    // Its session keeps working.
    EXPECT_TRUE(udp_reply_reaches(0, udp11_, host(11)));

    // Once no session holds it, the next change forgets it.
    EXPECT_GT(call("sessions.flush", {{"outside", used}}).at("flushed").get<uint64_t>(), 0u);
    const json later = call("pool.set", {{"name", "lab"}, {"max_sessions_per_host", 5}}).at("pool");
    EXPECT_EQ(later.at("draining"), json::array());
    EXPECT_FALSE(later.at("ports_in_use").contains(used));
    EXPECT_EQ(later.at("max_sessions_per_host"), 5);
    EXPECT_TRUE(live_->pools()[0].draining.empty());

    // Adding it back: live again, nothing draining.
    const json back = call("pool.set", {{"name", "lab"}, {"add_addresses", used}}).at("pool");
    EXPECT_EQ(back.at("addresses").size(), 3u);
    EXPECT_EQ(back.at("draining"), json::array());
}

TEST_F(ControlApiEngines, ReaddedDrainingAddressStopsDraining) {
    load_traffic();
    const std::string used = format_ipv4(udp11_.addr);
    call("pool.set", {{"name", "lab"}, {"del_addresses", used}});
    ASSERT_EQ(pool_entry("lab").at("draining"), (json{used}));
    const json back = call("pool.set", {{"name", "lab"}, {"add_addresses", used}}).at("pool");
    EXPECT_EQ(back.at("draining"), json::array());
    EXPECT_EQ(back.at("addresses"), (json{"198.19.0.10", "198.19.0.11"}));
    EXPECT_FALSE(threads_[0]->run([&](NatWorker& e) { return e.ports().draining(htonl(udp11_.addr)); }));
}

TEST_F(ControlApiEngines, PoolSetErrorsChangeNothing) {
    load_traffic();
    const NatConfig* before = &live_->current();
    const std::string pools_before = describe(live_->pools());
    const std::string rules_before = describe(live_->rules());

    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"del_addresses", "198.19.0.99"}}), "not_found");
    EXPECT_NE(last_message_.find("198.19.0.99"), std::string::npos) << last_message_;
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"del_addresses", "198.19.0.20"}}), "not_found")
        << "an address of another pool";
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.12"}, {"del_addresses", "198.19.0.99"}}),
              "not_found")
        << "a request fails or succeeds as a whole";
    EXPECT_EQ(code_of("pool.set", {{"name", "guests"}, {"del_addresses", "198.19.0.20"}}), "invalid_config")
        << "the last address";
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"del_addresses", "198.19.0.10-198.19.0.11"}}), "invalid_config");
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.20"}}), "invalid_config")
        << "an address of another live pool";
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"ports", "7000-7000"}}), "invalid_config");
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}, {"rules", {"198.18.0.128/25"}}}), "invalid_config")
        << "guests has that prefix";
    EXPECT_EQ(code_of("pool.set", {{"name", "lab"}}), "bad_request") << "nothing to change";

    EXPECT_EQ(&live_->current(), before);
    EXPECT_EQ(describe(live_->pools()), pools_before);
    EXPECT_EQ(describe(live_->rules()), rules_before);
    for (const auto& e : engines_) EXPECT_EQ(e->config(), before);
}

TEST_F(ControlApiEngines, PoolSetPortsAndRules) {
    load_traffic();
    const json p = call("pool.set", {{"name", "lab"}, {"ports", "20000-20099"}}).at("pool");
    EXPECT_EQ(p.at("ports"), "20000-20099");
    EXPECT_EQ(live_->current().pools[0].port_min, 20000);
    EXPECT_EQ(live_->current().pools[0].port_max, 20099);
    // New sessions get ports of the new range (worker 0: even ports), old ones keep theirs.
    clock_.store(kTrafficMs);
    for (int h = 20; h < 30; ++h) {
        const Mapped m = udp_out(0, host(h), 5000);
        EXPECT_GE(m.port, 20000);
        EXPECT_LE(m.port, 20099);
        EXPECT_EQ(m.port % 2, 0) << "worker 0's partition";
    }
    EXPECT_TRUE(udp_reply_reaches(0, udp11_, host(11)));

    // Rules replaced: .100 is in the old /25 but not in the new /26.
    const json r = call("pool.set", {{"name", "lab"}, {"rules", {"198.18.0.0/26"}}}).at("pool");
    EXPECT_EQ(r.at("rules"), (json{"198.18.0.0/26"}));
    EXPECT_EQ(describe(live_->rules()), "198.18.0.128/25->guests;198.18.0.0/26->lab;");
    EXPECT_EQ(pool_entry("guests").at("rules"), (json{"198.18.0.128/25"}));
    const NatOutcome o = send(0, Side::Inside, PacketBuilder().eth().ipv4(host(100), kServer).udp(1, 53).payload(8).build());
    EXPECT_EQ(o.result.verdict, Verdict::Drop);
    EXPECT_EQ(o.result.reason, DropReason::NoRule);
    udp_out(0, host(40), 5000);

    // No rules at all.
    EXPECT_EQ(call("pool.set", {{"name", "lab"}, {"rules", json::array()}}).at("pool").at("rules"), json::array());
    EXPECT_EQ(describe(live_->rules()), "198.18.0.128/25->guests;");
}

TEST_F(ControlApiEngines, PolicyAndTimeoutsSet) {
    load_traffic();
    EXPECT_EQ(call("policy.set", {{"pool", "guests"}, {"policy", "liberal"}}),
              (json{{"pool", "guests"}, {"policy", "liberal"}}));
    EXPECT_EQ(pool_entry("guests").at("policy"), "liberal");
    EXPECT_EQ(live_->current().pools[1].policy, Policy::Liberal);
    for (const auto& e : engines_) EXPECT_EQ(e->config()->pools[1].policy, Policy::Liberal);
    EXPECT_EQ(pool_entry("lab").at("policy"), "liberal");

    const json t = call("timeouts.set", {{"pool", "lab"}, {"timeouts", {{"udp", 30}, {"quarantine", 0}}}});
    const json want = {{"tcp_established", 7440}, {"tcp_transitory", 240}, {"tcp_syn_sent", 120},
                       {"tcp_syn_recv", 60}, {"udp", 30},
                       {"icmp", 60},             {"quarantine", 0},        {"linger", 2}};
    EXPECT_EQ(t, (json{{"pool", "lab"}, {"timeouts", want}}));
    EXPECT_EQ(pool_entry("lab").at("timeouts"), want);
    EXPECT_EQ(pool_entry("guests").at("timeouts").at("udp"), 120) << "the other pool keeps its own";
    EXPECT_EQ(live_->current().pools[0].timeouts.udp, 30u);

    // The new timeout applies to existing sessions: 31 s after the traffic, lab's UDP sessions
    // (3 on worker 0, 2 on worker 1) expire, nothing else does.
    const uint32_t later = kTrafficMs + 31000;
    EXPECT_EQ(threads_[0]->run([&](NatWorker& e) { return e.expire(later, 100000); }), 3u);
    EXPECT_EQ(threads_[1]->run([&](NatWorker& e) { return e.expire(later, 100000); }), 2u);
    EXPECT_EQ(count({{"proto", "udp"}}), 2u);

    EXPECT_EQ(code_of("timeouts.set", {{"pool", "lab"}, {"timeouts", {{"udp", 0}}}}), "bad_request");
    EXPECT_EQ(code_of("policy.set", {{"pool", "lab"}, {"policy", "lenient"}}), "bad_request");
    EXPECT_EQ(live_->current().pools[0].timeouts.udp, 30u);
}

TEST_F(ControlApiEngines, PoolDelDrainsItsSessionsAndRemovesItsRules) {
    load_traffic();
    EXPECT_EQ(call("pool.del", {{"name", "guests"}}), (json{{"removed", "guests"}, {"draining_sessions", 4}}));
    EXPECT_EQ(live_->find_pool("guests"), -1);
    EXPECT_EQ(describe(live_->rules()), "198.18.0.0/25->lab;");
    const json gone = pool_entry("guests");
    ASSERT_FALSE(gone.is_null()) << "listed while its sessions drain";
    EXPECT_EQ(gone.at("deleted"), true);
    EXPECT_EQ(gone.at("addresses"), json::array());
    EXPECT_EQ(gone.at("draining"), (json{"198.19.0.20"}));
    EXPECT_EQ(gone.at("rules"), json::array());
    EXPECT_EQ(ports_in_use(gone, "udp", 0) + ports_in_use(gone, "udp", 1), 2u);

    // Its sessions keep working and are still its own; new sources of its prefix get nothing.
    EXPECT_TRUE(udp_reply_reaches(0, guest_udp140_, host(140)));
    EXPECT_EQ(count({{"outside", "198.19.0.20"}}), 4u);
    const json old = call("sessions", {{"outside", "198.19.0.20"}});
    for (const json& s : old.at("sessions")) EXPECT_EQ(s.at("pool"), "guests");
    const NatOutcome o = send(0, Side::Inside, PacketBuilder().eth().ipv4(host(150), kServer).udp(1, 53).payload(8).build());
    EXPECT_EQ(o.result.verdict, Verdict::Drop);
    EXPECT_EQ(o.result.reason, DropReason::NoRule);

    // Gone as far as the API's names go.
    EXPECT_EQ(code_of("pool.del", {{"name", "guests"}}), "not_found");
    EXPECT_EQ(code_of("policy.set", {{"pool", "guests"}, {"policy", "strict"}}), "not_found");

    // Drained (flushed) and the next change: the slot, last in the list, is gone.
    EXPECT_EQ(call("sessions.flush", {{"outside", "198.19.0.20"}}).at("flushed"), 4);
    call("policy.set", {{"pool", "lab"}, {"policy", "strict"}});
    EXPECT_EQ(live_->pools().size(), 1u);
    EXPECT_EQ(call("pools").at("pools").size(), 1u);

    // The name can be used again.
    const json again = call("pool.add", {{"name", "guests"}, {"addresses", "198.19.0.20"}}).at("pool");
    EXPECT_EQ(again.at("id"), 1);
    EXPECT_EQ(again.at("deleted"), false);
}

TEST_F(ControlApiEngines, PoolDelCountsOnlyThatPoolsSessions) {
    load_traffic();
    call("pool.add", {{"name", "empty"}, {"addresses", "198.19.0.30"}});
    EXPECT_EQ(call("pool.del", {{"name", "empty"}}).at("draining_sessions"), 0);
    // Nothing holds its address: the very change that deleted it dropped the slot.
    EXPECT_EQ(live_->pools().size(), 2u);
    EXPECT_EQ(call("pool.del", {{"name", "lab"}}).at("draining_sessions"), 7);
    EXPECT_EQ(table_size(0), 7u) << "deleting a pool ends no session";
}

TEST_F(ControlApiEngines, UnknownPoolIsNotFound) {
    EXPECT_EQ(code_of("pool.set", {{"name", "nope"}, {"add_addresses", "198.19.0.50"}}), "not_found");
    EXPECT_NE(last_message_.find("nope"), std::string::npos) << last_message_;
    EXPECT_EQ(code_of("pool.del", {{"name", "nope"}}), "not_found");
    EXPECT_EQ(code_of("policy.set", {{"pool", "nope"}, {"policy", "strict"}}), "not_found");
    EXPECT_EQ(code_of("timeouts.set", {{"pool", "nope"}, {"timeouts", {{"udp", 5}}}}), "not_found");
    EXPECT_EQ(code_of("sessions", {{"pool", "nope"}}), "not_found");
    EXPECT_EQ(code_of("sessions.flush", {{"pool", "nope"}}), "not_found");
    EXPECT_EQ(live_->pools().size(), 2u);
}

// A deleted pool's sessions still carry its id. When another pool takes over its address, those
// sessions are still there: the deleted pool's slot must not be dropped or reused while they live (docs/control.md: "its sessions keep its policy and
// timeouts", "a deleted pool keeps its slot until its addresses have drained").
TEST_F(ControlApiEngines, DeletedPoolKeepsItsSlotWhileItsSessionsLiveOnAMovedAddress) {
    load_traffic();
    call("pool.del", {{"name", "guests"}});
    call("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.20"}});
    // The old guests sessions (ports on .20, pool id 1) are still in the tables.
    ASSERT_EQ(count({{"outside", "198.19.0.20"}}), 4u);
    const json old = call("sessions", {{"outside", "198.19.0.20"}});
    for (const json& s : old.at("sessions")) EXPECT_EQ(s.at("pool"), "guests") << s;
    // The deleted pool stays listed, the address draining there while it is live in lab.
    const json gone = pool_entry("guests");
    ASSERT_FALSE(gone.is_null()) << "listed while its sessions live";
    EXPECT_EQ(gone.at("deleted"), true);
    EXPECT_EQ(gone.at("draining"), (json{"198.19.0.20"}));
    EXPECT_EQ(pool_entry("lab").at("addresses"), (json{"198.19.0.10", "198.19.0.11", "198.19.0.20"}));
    // A new pool must not inherit them.
    const json added = call("pool.add", {{"name", "newpool"}, {"addresses", "198.19.0.40"}}).at("pool");
    EXPECT_EQ(added.at("id"), 2) << "slot 1 is still guests'";
    EXPECT_EQ(count({{"pool", "newpool"}}), 0u) << "a brand-new pool owns sessions it never created";
    EXPECT_EQ(call("pool.del", {{"name", "newpool"}}).at("draining_sessions"), 0);

    // Once they end, the next change frees the slot.
    EXPECT_EQ(call("sessions.flush", {{"outside", "198.19.0.20"}}).at("flushed"), 4);
    call("policy.set", {{"pool", "lab"}, {"policy", "strict"}});
    EXPECT_TRUE(pool_entry("guests").is_null());
    EXPECT_TRUE(live_->pools()[1].draining.empty());
}

TEST_F(ControlApiEngines, SaveWritesAFileTheDaemonAccepts) {
    load_traffic();
    call("pool.add", {{"name", "extra"}, {"addresses", "198.19.0.30-198.19.0.31"}, {"rules", {"198.18.1.0/24"}}});
    call("pool.set", {{"name", "lab"}, {"ports", "20000-29999"}});
    call("pool.del", {{"name", "guests"}});  // retired, draining: not written

    const std::string path = dir_.path("saved.conf");
    EXPECT_EQ(call("save", {{"path", path}}), (json{{"path", path}}));
    ASSERT_TRUE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    const std::string text = read_file(path);
    EXPECT_NE(text.find("[pool.extra]"), std::string::npos) << text;
    EXPECT_NE(text.find("198.19.0.30-198.19.0.31"), std::string::npos) << text;
    EXPECT_NE(text.find("20000-29999"), std::string::npos) << text;
    EXPECT_EQ(text.find("[pool.guests]"), std::string::npos) << text;

    const CommandLine back = parse_args({"--config", path, "--check-config"});
    EXPECT_TRUE(back.check_only);
    EXPECT_EQ(back.config.workers, kWorkers);
    ASSERT_EQ(back.config.pools.size(), 2u);
    EXPECT_EQ(back.config.pools[0].name, "lab");
    EXPECT_EQ(back.config.pools[0].ports, "20000-29999");
    EXPECT_EQ(back.config.pools[1].name, "extra");
    EXPECT_EQ(parse_address_list(back.config.pools[1].addresses),
              (std::vector<uint32_t>{ip("198.19.0.30"), ip("198.19.0.31")}));
    EXPECT_EQ(describe(back.config.rules), "198.18.0.0/25->lab;198.18.1.0/24->extra;");

    // Without a path: over the file the daemon read.
    EXPECT_EQ(call("save").at("path"), config_.config_file);
    const CommandLine same = parse_args({"--config", config_.config_file, "--check-config"});
    EXPECT_EQ(same.config.pools.size(), 2u);
    EXPECT_NE(read_file(config_.config_file).find("[pool.extra]"), std::string::npos);

    EXPECT_EQ(code_of("save", {{"path", "/nonexistent-snatgw-dir/x.conf"}}), "internal");
    EXPECT_EQ(code_of("save", {{"path", "relative.conf"}}), "bad_request");
}

TEST_F(ControlApiEngines, LogLevel) {
    const auto before = spdlog::get_level();
    EXPECT_EQ(call("log.level", {{"level", "warn"}}), (json{{"level", "warn"}}));
    EXPECT_EQ(spdlog::get_level(), spdlog::level::warn);
    EXPECT_EQ(config_.log_level, "warn");
    EXPECT_EQ(call("log.level", {{"level", "off"}}).at("level"), "off");
    EXPECT_EQ(spdlog::get_level(), spdlog::level::off);
    EXPECT_EQ(code_of("log.level", {{"level", "loud"}}), "bad_request");
    EXPECT_EQ(config_.log_level, "off");
    spdlog::set_level(before);
}

// =============================================================================================
// A mailbox nobody serves
// =============================================================================================

TEST(ControlApiMailbox, UnservedMailboxIsAnInternalErrorAfterTheTimeout) {
    DaemonConfig cfg = daemon_config(1, {pool_spec("lab", "198.19.0.10")}, {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);
    WorkerParams wp;
    wp.session_capacity = 1024;
    wp.host_capacity = 256;
    wp.seed = 1;
    wp.table_prefix = "capi_mb";
    NatWorker engine(&live.current(), wp);
    WorkerMailbox mailbox;
    ControlApiDeps deps;
    deps.config = &cfg;
    deps.live = &live;
    deps.engines = {&engine};
    deps.mailboxes = {&mailbox};
    deps.mailbox_timeout_ms = 200;
    ControlApi api(std::move(deps));
    const auto count_request = validate_request(json{{"command", "sessions"}, {"args", {{"count_only", true}}}});

    const auto start = std::chrono::steady_clock::now();
    try {
        api.handle(count_request);
        ADD_FAILURE() << "answered without a worker";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.code, "internal");
        EXPECT_NE(std::string(e.what()).find("did not answer within 200 ms"), std::string::npos) << e.what();
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, std::chrono::milliseconds(200));
    EXPECT_LT(waited, std::chrono::milliseconds(3000));

    // The request is still posted: the next one is refused at once, it does not queue.
    const auto again = std::chrono::steady_clock::now();
    try {
        api.handle(validate_request(json{{"command", "sessions.flush"}, {"args", {{"all", true}}}}));
        ADD_FAILURE() << "answered without a worker";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.code, "internal");
        EXPECT_NE(std::string(e.what()).find("still busy"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - again, std::chrono::milliseconds(150));
    // What needs no worker still works.
    EXPECT_EQ(api.handle(validate_request(json{{"command", "pools"}})).at("pools").size(), 1u);

    // Once the worker runs again, it answers the stale request and the mailbox is usable.
    std::atomic<uint32_t> clock{1000};
    EngineThread worker(engine, mailbox, live.published(), nullptr, clock);
    worker.start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (mailbox.done.load() != mailbox.posted.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(api.handle(count_request), (json{{"total", 0}}));
    worker.stop();
}

// A worker that answers after the timeout (slow, not stuck) writes its records only into the
// mailbox's own buffer, never into memory of the request that already failed (found as a
// heap-use-after-free under ASan when the request owned the buffer).
TEST(ControlApiMailbox, LateAnswerWritesOnlyWhereItMay) {
    DaemonConfig cfg = daemon_config(1, {pool_spec("lab", "198.19.0.10")}, {{"198.18.0.0/24", "lab"}});
    LiveConfig live(cfg);
    WorkerParams wp;
    wp.session_capacity = 1024;
    wp.host_capacity = 256;
    wp.seed = 1;
    wp.table_prefix = "capi_late";
    NatWorker engine(&live.current(), wp);
    // Sessions for the late answer to copy (the worker thread is not running yet: this thread
    // is the engine's only user).
    for (int i = 1; i <= 20; ++i) {
        auto frame = PacketBuilder().eth().ipv4(host(i), kServer).udp(4000, 53).payload(8).build();
        Frame f{frame.data(), static_cast<uint32_t>(frame.size())};
        FrameResult r;
        engine.process(Side::Inside, &f, &r, 1, 1000);
        ASSERT_EQ(r.verdict, Verdict::Forward);
    }
    WorkerMailbox mailbox;
    ControlApiDeps deps;
    deps.config = &cfg;
    deps.live = &live;
    deps.engines = {&engine};
    deps.mailboxes = {&mailbox};
    deps.mailbox_timeout_ms = 50;
    ControlApi api(std::move(deps));
    EXPECT_THROW(api.handle(validate_request(json{{"command", "sessions"}, {"args", {{"limit", 100}}}})), ControlError);

    std::atomic<uint32_t> clock{1000};
    EngineThread worker(engine, mailbox, live.published(), nullptr, clock);
    worker.start();  // answers the stale request (into the mailbox's own buffer)
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (mailbox.done.load() != mailbox.posted.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    worker.stop();
    EXPECT_EQ(mailbox.done.load(), mailbox.posted.load());
}

}  // namespace
}  // namespace snatgw::test
