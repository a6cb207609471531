// Neighbour*: the next-hop table (learn, request rate limit, reachable -> stale -> invalid,
// capacity, request backoff), one writer racing two lock-free readers that must never see a
// torn or foreign MAC, and the hold queue for packets waiting on resolution (burst, caps,
// expiry, the daemon's sizing).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "neighbour_table.h"
#include "packet_builder.h"

namespace snatgw::test {
namespace {

const MacAddr kMacA{0x02, 0, 0, 0, 0, 0x0a};
const MacAddr kMacB{0x02, 0, 0, 0, 0, 0x0b};

TEST(NeighbourTable, UnknownAddressMisses) {
    NeighbourTable t(16);
    MacAddr m{};
    EXPECT_FALSE(t.lookup(ip("198.18.0.2"), m));
    EXPECT_FALSE(t.lookup(0, m));
    EXPECT_EQ(t.size(), 0u);
}

TEST(NeighbourTable, LearnThenLookupThenUpdate) {
    NeighbourTable t(16);
    ASSERT_TRUE(t.learn(ip("198.18.0.2"), kMacA, 100));
    MacAddr m{};
    ASSERT_TRUE(t.lookup(ip("198.18.0.2"), m));
    EXPECT_EQ(m, kMacA);
    EXPECT_FALSE(t.lookup(ip("198.18.0.3"), m));
    ASSERT_TRUE(t.learn(ip("198.18.0.2"), kMacB, 200));  // the host changed its NIC
    ASSERT_TRUE(t.lookup(ip("198.18.0.2"), m));
    EXPECT_EQ(m, kMacB);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_FALSE(t.learn(0, kMacA, 0));
}

TEST(NeighbourTable, RefreshOnlyUpdatesKnownEntries) {
    NeighbourTable t(16);
    EXPECT_FALSE(t.refresh(ip("198.19.0.2"), kMacA, 1));
    EXPECT_EQ(t.size(), 0u);
    ASSERT_TRUE(t.needs_request(ip("198.19.0.2"), 1));  // we asked: now an answer is welcome
    EXPECT_TRUE(t.refresh(ip("198.19.0.2"), kMacA, 2));
    MacAddr m{};
    ASSERT_TRUE(t.lookup(ip("198.19.0.2"), m));
    EXPECT_EQ(m, kMacA);
}

TEST(NeighbourTable, FullTableRefusesNewButUpdatesOld) {
    NeighbourTable t(4);
    EXPECT_EQ(t.capacity(), 4u);
    for (uint32_t i = 1; i <= 4; ++i) ASSERT_TRUE(t.learn(ip("198.18.0.0") + i, kMacA, 0)) << i;
    EXPECT_FALSE(t.learn(ip("198.18.0.5"), kMacA, 0));
    EXPECT_FALSE(t.needs_request(ip("198.18.0.5"), 0));
    EXPECT_TRUE(t.learn(ip("198.18.0.1"), kMacB, 1));
    MacAddr m{};
    ASSERT_TRUE(t.lookup(ip("198.18.0.1"), m));
    EXPECT_EQ(m, kMacB);
    EXPECT_FALSE(t.lookup(ip("198.18.0.5"), m));
    EXPECT_EQ(t.size(), 4u);
    EXPECT_THROW(NeighbourTable(0), std::invalid_argument);
}

TEST(NeighbourTable, ManyNeighboursAllFoundWithTheirOwnMac) {
    // Consecutive addresses and addresses 2^k apart collide in naive hashes.
    NeighbourTable t(4096);
    std::vector<uint32_t> ips;
    for (uint32_t i = 1; i <= 2048; ++i) ips.push_back(ip("198.18.0.0") + i);
    for (uint32_t i = 1; i <= 2048; ++i) ips.push_back(ip("10.0.0.0") + (i << 12));
    for (uint32_t a : ips) {
        const MacAddr m{0x02, 0x01, uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)};
        ASSERT_TRUE(t.learn(a, m, 0));
    }
    EXPECT_EQ(t.size(), 4096u);
    EXPECT_EQ(t.resolved(), 4096u);
    for (uint32_t a : ips) {
        MacAddr m{};
        ASSERT_TRUE(t.lookup(a, m));
        EXPECT_EQ(m, (MacAddr{0x02, 0x01, uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)}));
    }
    MacAddr m{};
    EXPECT_FALSE(t.lookup(ip("198.18.9.1"), m));
}

// Unresolved: the first retry after 250 ms, then 500 ms, then one a second until it answers.
TEST(NeighbourRequest, RetriedWithBackoffUntilResolved) {
    NeighbourTable t(16);
    const uint32_t gw = ip("198.19.0.2");
    EXPECT_TRUE(t.needs_request(gw, 10'000));
    EXPECT_EQ(t.size(), 1u);  // a pending entry
    NeighbourTable::Info info{};
    ASSERT_TRUE(t.info(gw, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Pending);
    MacAddr m{};
    EXPECT_FALSE(t.lookup(gw, m));
    EXPECT_FALSE(t.needs_request(gw, 10'000));
    EXPECT_FALSE(t.needs_request(gw, 10'249));
    EXPECT_TRUE(t.needs_request(gw, 10'250));
    EXPECT_FALSE(t.needs_request(gw, 10'749));
    EXPECT_TRUE(t.needs_request(gw, 10'750));
    EXPECT_FALSE(t.needs_request(gw, 11'749));
    EXPECT_TRUE(t.needs_request(gw, 11'750));
    for (uint64_t at = 12'750; at <= 30'750; at += 1'000) {  // capped at a second
        EXPECT_FALSE(t.needs_request(gw, at - 1)) << at;
        EXPECT_TRUE(t.needs_request(gw, at)) << at;
    }
    EXPECT_EQ(t.size(), 1u);
    ASSERT_TRUE(t.learn(gw, kMacA, 31'000));
    EXPECT_FALSE(t.needs_request(gw, 40'000));  // reachable: nothing to ask
    EXPECT_TRUE(t.lookup(gw, m));
}

// An answer ends the backoff: once it has gone invalid, the next wait starts with short retries.
TEST(NeighbourRequest, BackoffRestartsAfterTheNeighbourWasResolved) {
    constexpr uint64_t kReachable = 1'000, kGrace = 1'000;
    NeighbourTable t(16, kGrace);
    const uint32_t a = ip("198.19.0.7");
    for (uint64_t at : {0, 250, 750, 1'750, 2'750}) ASSERT_TRUE(t.needs_request(a, at)) << at;
    ASSERT_TRUE(t.learn(a, kMacA, 3'000));
    t.expire(4'000, kReachable);  // stale: refreshed once a second
    ASSERT_TRUE(t.needs_request(a, 4'000));
    EXPECT_FALSE(t.needs_request(a, 4'250));
    EXPECT_EQ(t.expire(5'000, kReachable), 1u);  // invalid
    ASSERT_TRUE(t.needs_request(a, 5'000));
    EXPECT_FALSE(t.needs_request(a, 5'249));
    EXPECT_TRUE(t.needs_request(a, 5'250));
}

TEST(NeighbourExpire, ReachableThenStaleThenInvalid) {
    constexpr uint64_t kReachable = 30'000, kGrace = 5'000;
    NeighbourTable t(16, kGrace);
    const uint32_t a = ip("198.18.0.2");
    ASSERT_TRUE(t.learn(a, kMacA, 1'000));
    NeighbourTable::Info info{};
    MacAddr m{};

    EXPECT_EQ(t.expire(1'000 + kReachable - 1, kReachable), 0u);
    ASSERT_TRUE(t.info(a, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Reachable);
    EXPECT_FALSE(t.needs_request(a, 1'000 + kReachable - 1));
    EXPECT_TRUE(t.due_refreshes(1'000 + kReachable - 1).empty());

    // Stale: still used by the workers, and the writer re-requests it (rate limited).
    const uint64_t stale_at = 1'000 + kReachable;
    EXPECT_EQ(t.expire(stale_at, kReachable), 0u);
    ASSERT_TRUE(t.info(a, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Stale);
    ASSERT_TRUE(t.lookup(a, m));
    EXPECT_EQ(m, kMacA);
    // The daemon's housekeeping: for each due refresh, needs_request() (which records it), send.
    EXPECT_EQ(t.due_refreshes(stale_at), std::vector<uint32_t>{a});
    EXPECT_EQ(t.due_refreshes(stale_at), std::vector<uint32_t>{a});  // asking records nothing
    EXPECT_TRUE(t.needs_request(a, stale_at));
    EXPECT_TRUE(t.due_refreshes(stale_at).empty());
    EXPECT_TRUE(t.due_refreshes(stale_at + 999).empty());
    EXPECT_FALSE(t.needs_request(a, stale_at + 999));
    EXPECT_EQ(t.due_refreshes(stale_at + 1'000), std::vector<uint32_t>{a});
    EXPECT_TRUE(t.needs_request(a, stale_at + 1'000));
    EXPECT_TRUE(t.due_refreshes(stale_at + 1'500).empty());
    EXPECT_EQ(t.due_refreshes(stale_at + 2'000), std::vector<uint32_t>{a});

    // Grace over: invalid, readers miss, and it may be asked about again.
    EXPECT_EQ(t.expire(stale_at + kGrace - 1, kReachable), 0u);
    EXPECT_TRUE(t.lookup(a, m));
    EXPECT_EQ(t.expire(stale_at + kGrace, kReachable), 1u);
    EXPECT_FALSE(t.lookup(a, m));
    ASSERT_TRUE(t.info(a, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Invalid);
    EXPECT_EQ(info.mac, kMacA);
    EXPECT_EQ(t.expire(stale_at + kGrace + 10'000, kReachable), 0u);  // counted once
    EXPECT_TRUE(t.due_refreshes(stale_at + kGrace + 10'000).empty());  // invalid: on demand only
    EXPECT_TRUE(t.needs_request(a, stale_at + kGrace + 10'000));

    // A fresh answer makes it reachable again.
    ASSERT_TRUE(t.learn(a, kMacB, stale_at + kGrace + 10'100));
    ASSERT_TRUE(t.lookup(a, m));
    EXPECT_EQ(m, kMacB);
    ASSERT_TRUE(t.info(a, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Reachable);
}

TEST(NeighbourExpire, ConfirmationRestartsTheClock) {
    NeighbourTable t(16, 1'000);
    const uint32_t a = ip("198.18.0.2"), b = ip("198.18.0.3");
    ASSERT_TRUE(t.learn(a, kMacA, 0));
    ASSERT_TRUE(t.learn(b, kMacB, 0));
    ASSERT_TRUE(t.learn(a, kMacA, 9'000));
    t.expire(10'000, 10'000);
    NeighbourTable::Info info{};
    ASSERT_TRUE(t.info(a, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Reachable);
    ASSERT_TRUE(t.info(b, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Stale);
    EXPECT_EQ(t.expire(11'000, 10'000), 1u);
    EXPECT_EQ(t.resolved(), 1u);
    // Pending entries are not aged into anything.
    ASSERT_TRUE(t.needs_request(ip("198.18.0.4"), 11'000));
    EXPECT_EQ(t.expire(100'000, 10'000), 0u);  // a: reachable -> stale, one step a pass
    EXPECT_EQ(t.expire(100'000, 10'000), 1u);  // a: stale -> invalid
    ASSERT_TRUE(t.info(ip("198.18.0.4"), info));
    EXPECT_EQ(info.state, NeighbourTable::State::Pending);
}

// One writer (the main lcore) learns 10k neighbours and keeps changing their MACs, ages and
// re-requests them; two readers (workers) look up continuously. Each MAC encodes its address
// and a version: a reader must never see a MAC that is not one the writer wrote for that
// address (a torn mix of two versions, or another neighbour's MAC).
MacAddr versioned_mac(uint32_t a, uint8_t version) {
    const uint32_t x = a ^ (uint32_t{version} * 0x01010101u);
    return {0x02, version, uint8_t(x >> 24), uint8_t(x >> 16), uint8_t(x >> 8), uint8_t(x)};
}

bool consistent(uint32_t a, const MacAddr& m) { return m == versioned_mac(a, m[1]); }

TEST(NeighbourConcurrent, ReadersNeverSeeATornOrForeignMac) {
    constexpr uint32_t kCount = 10'000;
    constexpr int kRounds = 20;
    NeighbourTable t(kCount, 50);
    const uint32_t base = ip("10.0.0.0");
    std::atomic<bool> done{false};
    std::atomic<uint64_t> bad{0};
    std::atomic<uint64_t> hits[2] = {0, 0};
    std::atomic<uint64_t> lookups[2] = {0, 0};

    auto reader = [&](int id) {
        uint32_t i = static_cast<uint32_t>(id) * 7919;
        uint64_t h = 0, n = 0;
        while (!done.load(std::memory_order_acquire)) {
            for (int k = 0; k < 256; ++k) {
                i = (i + 4099) % (kCount + 100);  // includes addresses that are never learnt
                const uint32_t a = base + 1 + i;
                MacAddr m{};
                ++n;
                if (t.lookup(a, m)) {
                    ++h;
                    if (i >= kCount || !consistent(a, m)) bad.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
        hits[id].store(h);
        lookups[id].store(n);
    };

    std::thread writer([&] {
        uint64_t now = 0;
        for (int round = 0; round < kRounds; ++round) {
            for (uint32_t i = 0; i < kCount; ++i) {
                const uint32_t a = base + 1 + i;
                if (round == 0 && i % 3 == 0) t.needs_request(a, now);  // pending first
                t.learn(a, versioned_mac(a, static_cast<uint8_t>(round * 13 + i % 7)), now);
            }
            now += 40;
            t.expire(now, 30);  // some stale, some invalid between rounds
            for (uint32_t a : t.due_refreshes(now)) t.needs_request(a, now);
            now += 40;
            t.expire(now, 30);
        }
    });
    std::thread r0(reader, 0), r1(reader, 1);
    writer.join();
    done.store(true, std::memory_order_release);
    r0.join();
    r1.join();

    EXPECT_EQ(bad.load(), 0u);
    EXPECT_EQ(t.size(), kCount);
    for (int id = 0; id < 2; ++id) {
        EXPECT_GT(lookups[id].load(), 0u);
        EXPECT_GT(hits[id].load(), 0u) << "reader " << id << " never found anything: the test proved nothing";
    }
    // After the writer stopped, every entry holds the last round's MAC or is invalid.
    for (uint32_t i = 0; i < kCount; ++i) {
        const uint32_t a = base + 1 + i;
        MacAddr m{};
        NeighbourTable::Info info{};
        ASSERT_TRUE(t.info(a, info));
        EXPECT_EQ(info.mac, versioned_mac(a, static_cast<uint8_t>((kRounds - 1) * 13 + i % 7)));
        if (t.lookup(a, m)) {
            EXPECT_EQ(m, info.mac);
        }
    }
}

// ---------------------------------------------------------------------------------------------

void* pkt(uintptr_t n) { return reinterpret_cast<void*>(n); }

TEST(NeighbourHoldQueue, HoldsAFewPerNeighbourAndReleasesInOrder) {
    HoldQueue q(4, 100);
    const uint32_t a = ip("198.19.0.2"), b = ip("198.19.0.3");
    for (uintptr_t i = 1; i <= 4; ++i) EXPECT_TRUE(q.hold(a, pkt(i), i));
    EXPECT_FALSE(q.hold(a, pkt(5), 5));  // the caller drops and counts
    EXPECT_TRUE(q.hold(b, pkt(10), 6));
    EXPECT_EQ(q.size(), 5u);
    EXPECT_EQ(q.waiting(a), 4u);
    EXPECT_EQ(q.release(a), (std::vector<void*>{pkt(1), pkt(2), pkt(3), pkt(4)}));
    EXPECT_EQ(q.waiting(a), 0u);
    EXPECT_TRUE(q.release(a).empty());
    EXPECT_TRUE(q.release(ip("198.19.0.9")).empty());
    EXPECT_EQ(q.size(), 1u);
    EXPECT_TRUE(q.hold(a, pkt(6), 7));  // room again
}

TEST(NeighbourHoldQueue, GlobalCapBoundsEverything) {
    HoldQueue q(4, 6);
    uintptr_t n = 1;
    for (uint32_t host = 1; host <= 3; ++host)
        for (int k = 0; k < 2; ++k) EXPECT_TRUE(q.hold(host, pkt(n++), 0));
    EXPECT_FALSE(q.hold(4, pkt(n++), 0));
    EXPECT_FALSE(q.hold(1, pkt(n++), 0));
    EXPECT_EQ(q.size(), 6u);
    EXPECT_EQ(q.release(2).size(), 2u);
    EXPECT_TRUE(q.hold(4, pkt(n++), 0));
    HoldQueue none(0, 10);
    EXPECT_FALSE(none.hold(1, pkt(1), 0));
}

TEST(NeighbourHoldQueue, OldPacketsExpireNewOnesStay) {
    HoldQueue q(4, 100);
    q.hold(1, pkt(1), 100);
    q.hold(1, pkt(2), 600);
    q.hold(2, pkt(3), 200);
    EXPECT_TRUE(q.expire(1'099, 1'000).empty());
    const std::vector<void*> old = q.expire(1'200, 1'000);
    EXPECT_EQ(std::set<void*>(old.begin(), old.end()), (std::set<void*>{pkt(1), pkt(3)}));
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.waiting(1), 1u);
    EXPECT_EQ(q.waiting(2), 0u);
    EXPECT_EQ(q.release(1), std::vector<void*>{pkt(2)});
    EXPECT_EQ(q.size(), 0u);
}

TEST(NeighbourHoldQueue, DrainReturnsEverything) {
    HoldQueue q(4, 100);
    for (uintptr_t i = 1; i <= 9; ++i) q.hold(static_cast<uint32_t>(i % 3 + 1), pkt(i), i);
    const std::vector<void*> all = q.drain();
    EXPECT_EQ(all.size(), 9u);
    EXPECT_EQ(std::set<void*>(all.begin(), all.end()).size(), 9u);
    EXPECT_EQ(q.size(), 0u);
    EXPECT_TRUE(q.drain().empty());
}

// The cold-start case: a storm's first SYNs toward one server, all before its MAC is known.
TEST(NeighbourHoldQueue, ABurstOf128ForOneNeighbourIsHeldWholeAndReleasedInOrder) {
    HoldQueue q;  // the defaults
    EXPECT_EQ(q.per_neighbour(), HoldQueue::kDefaultPerNeighbour);
    EXPECT_EQ(q.global_cap(), HoldQueue::kDefaultGlobalCap);
    const uint32_t server = ip("198.18.0.2"), host = ip("10.0.0.2");
    std::vector<void*> want;
    for (uintptr_t i = 1; i <= 128; ++i) {
        ASSERT_TRUE(q.hold(server, pkt(i), i / 16)) << i;
        want.push_back(pkt(i));
    }
    for (uintptr_t i = 1; i <= 32; ++i) ASSERT_TRUE(q.hold(host, pkt(1'000 + i), 10));
    EXPECT_EQ(q.waiting(server), 128u);
    EXPECT_EQ(q.size(), 160u);
    EXPECT_EQ(q.release(server), want);
    EXPECT_EQ(q.size(), 32u);
    EXPECT_EQ(q.waiting(host), 32u);
}

TEST(NeighbourHoldQueue, PerNeighbourLimitThenGlobalCap) {
    HoldQueue q(256, 2048);
    uintptr_t n = 1;
    for (int k = 0; k < 256; ++k) ASSERT_TRUE(q.hold(1, pkt(n++), 0));
    EXPECT_FALSE(q.hold(1, pkt(n++), 0));  // the neighbour's limit
    for (uint32_t host = 2; host <= 8; ++host)
        for (int k = 0; k < 256; ++k) ASSERT_TRUE(q.hold(host, pkt(n++), 0));
    EXPECT_EQ(q.size(), 2048u);
    EXPECT_FALSE(q.hold(9, pkt(n++), 0));  // the global cap, for a new neighbour too
    EXPECT_EQ(q.waiting(9), 0u);
    EXPECT_EQ(q.release(3).size(), 256u);
    for (int k = 0; k < 256; ++k) ASSERT_TRUE(q.hold(9, pkt(n++), 0));
    EXPECT_FALSE(q.hold(10, pkt(n++), 0));
    EXPECT_EQ(q.drain().size(), 2048u);
}

// Slots go back to the free list on every path (release, expire, drain): the queue can be
// refilled to its cap forever, and order holds across reused slots.
TEST(NeighbourHoldQueue, SlotsAreReusedOnEveryPath) {
    HoldQueue q(8, 16);
    uintptr_t n = 1;
    for (int round = 0; round < 100; ++round) {
        const uint64_t t0 = static_cast<uint64_t>(round) * 10'000;
        std::vector<void*> first, second;
        for (int k = 0; k < 8; ++k) {
            first.push_back(pkt(n));
            ASSERT_TRUE(q.hold(1, pkt(n++), t0));
            second.push_back(pkt(n));
            ASSERT_TRUE(q.hold(2, pkt(n++), t0 + 500));
        }
        ASSERT_FALSE(q.hold(3, pkt(n++), t0));
        switch (round % 3) {
            case 0:
                EXPECT_EQ(q.release(2), second);
                EXPECT_EQ(q.release(1), first);
                break;
            case 1:
                EXPECT_EQ(q.expire(t0 + 1'000, 1'000), first);
                EXPECT_EQ(q.expire(t0 + 1'500, 1'000), second);
                break;
            default: EXPECT_EQ(q.drain().size(), 16u); break;
        }
        ASSERT_EQ(q.size(), 0u) << round;
    }
}

TEST(NeighbourHoldQueue, WaitingNeighboursAreListedForRetries) {
    HoldQueue q(4, 100);
    q.hold(ip("198.18.0.2"), pkt(1), 0);
    q.hold(ip("10.0.0.7"), pkt(2), 0);
    q.hold(ip("10.0.0.7"), pkt(3), 0);
    std::set<uint32_t> seen;
    q.for_each_waiting([&](uint32_t a) { seen.insert(a); });
    EXPECT_EQ(seen, (std::set<uint32_t>{ip("198.18.0.2"), ip("10.0.0.7")}));
    q.release(ip("10.0.0.7"));
    seen.clear();
    q.for_each_waiting([&](uint32_t a) { seen.insert(a); });
    EXPECT_EQ(seen, std::set<uint32_t>{ip("198.18.0.2")});
}

// The daemon's sizing: an eighth of the smaller pool, at most the control ring, at most 256
// per neighbour.
TEST(NeighbourHoldQueue, LimitsFollowThePoolAndTheControlRing) {
    EXPECT_EQ(hold_limits_for(16383, 4095).global_cap, 2047u);  // the defaults
    EXPECT_EQ(hold_limits_for(16383, 4095).per_neighbour, 256u);
    EXPECT_EQ(hold_limits_for(512, 4095).global_cap, 64u);  // the smallest pool allowed
    EXPECT_EQ(hold_limits_for(512, 4095).per_neighbour, 64u);
    EXPECT_EQ(hold_limits_for(16383, 63).global_cap, 63u);  // the smallest ring allowed
    EXPECT_EQ(hold_limits_for(16383, 63).per_neighbour, 63u);
    EXPECT_EQ(hold_limits_for(1u << 20, 65535).global_cap, 65535u);
    EXPECT_EQ(hold_limits_for(1u << 20, 65535).per_neighbour, 256u);
    EXPECT_EQ(hold_limits_for(0, 0).global_cap, 1u);
}

}  // namespace
}  // namespace snatgw::test
