// Neighbour*: the next-hop table (learn, request rate limit, reachable -> stale -> invalid,
// capacity, request backoff), one writer racing two lock-free readers that must never see a
// torn or foreign MAC, and the hold queue for packets waiting on resolution (burst, caps,
// expiry, the daemon's sizing).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <map>
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

// A full table makes room: the least recently inserted (nothing was used) goes; an entry that
// is there is updated in place.
TEST(NeighbourTable, FullTableEvictsTheOldestButUpdatesInPlace) {
    NeighbourTable t(4);
    EXPECT_EQ(t.capacity(), 4u);
    for (uint32_t i = 1; i <= 4; ++i) ASSERT_TRUE(t.learn(ip("198.18.0.0") + i, kMacA, 0)) << i;
    EXPECT_TRUE(t.learn(ip("198.18.0.1"), kMacB, 1));  // updated, nothing evicted
    EXPECT_EQ(t.stats().evicted, 0u);
    MacAddr m{};
    ASSERT_TRUE(t.lookup(ip("198.18.0.1"), m));
    EXPECT_EQ(m, kMacB);
    EXPECT_TRUE(t.learn(ip("198.18.0.5"), kMacA, 2));  // .1 was first in: it goes
    EXPECT_EQ(t.stats().evicted, 1u);
    EXPECT_FALSE(t.lookup(ip("198.18.0.1"), m));
    EXPECT_TRUE(t.lookup(ip("198.18.0.5"), m));
    EXPECT_TRUE(t.needs_request(ip("198.18.0.6"), 3));  // .2 goes
    EXPECT_FALSE(t.lookup(ip("198.18.0.2"), m));
    EXPECT_EQ(t.size(), 4u);
    EXPECT_EQ(t.stats().evicted, 2u);
    EXPECT_EQ(t.stats().table_full, 0u);
    EXPECT_FALSE(t.learn(ip("255.255.255.255"), kMacA, 0));
    EXPECT_THROW(NeighbourTable(0), std::invalid_argument);
}

// Pinned entries are never evicted: a table of pinned entries refuses, and counts it.
TEST(NeighbourTable, PinnedEntriesAreNeverEvicted) {
    NeighbourTable t(2);
    ASSERT_TRUE(t.pin(ip("198.19.0.254"), 0));
    ASSERT_TRUE(t.pin(ip("198.19.0.253"), 0));
    EXPECT_FALSE(t.learn(ip("198.18.0.7"), kMacA, 1));
    EXPECT_EQ(t.request(ip("198.18.0.8"), 1, ip("198.18.0.11")), NeighbourTable::Request::Full);
    EXPECT_EQ(t.stats().table_full, 2u);
    EXPECT_EQ(t.stats().evicted, 0u);
    NeighbourTable::Info info{};
    ASSERT_TRUE(t.info(ip("198.19.0.254"), info));
    EXPECT_TRUE(info.pinned);
    EXPECT_EQ(info.state, NeighbourTable::State::Pending);
    // Nor aged out, whatever their state and however long unused or unasked.
    ASSERT_TRUE(t.learn(ip("198.19.0.254"), kMacA, 2));
    for (uint64_t now = 0; now <= 600'000; now += 10'000) t.expire(now, 30'000);
    EXPECT_EQ(t.size(), 2u);
    ASSERT_TRUE(t.info(ip("198.19.0.254"), info));
    EXPECT_EQ(info.state, NeighbourTable::State::Invalid);
    ASSERT_TRUE(t.info(ip("198.19.0.253"), info));
    EXPECT_EQ(info.state, NeighbourTable::State::Pending);
    EXPECT_EQ(t.stats().expired, 0u);
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
    NeighbourTable t(16, 1'000, /*idle_ms=*/1'000'000);
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
    // Pending entries are not aged into anything (they are reclaimed once nobody asks: below).
    ASSERT_TRUE(t.needs_request(ip("198.18.0.4"), 11'000));
    EXPECT_EQ(t.expire(12'000, 10'000), 0u);
    ASSERT_TRUE(t.info(ip("198.18.0.4"), info));
    EXPECT_EQ(info.state, NeighbourTable::State::Pending);
    EXPECT_EQ(t.expire(100'000, 10'000), 0u);  // a: reachable -> stale, one step a pass
    EXPECT_EQ(t.expire(100'000, 10'000), 1u);  // a: stale -> invalid
}

// ---- reclamation (issue 13) ----------------------------------------------------------------

// A resolved entry the readers use stays; one they do not use goes after idle_ms; an entry in
// use that stops being used goes idle_ms after its last use.
TEST(NeighbourReclaim, UnusedResolvedEntriesAgeOut) {
    constexpr uint64_t kIdle = 10'000, kReachable = 1'000'000'000;
    NeighbourTable t(16, 5'000, kIdle);
    const uint32_t used = ip("198.18.0.2"), unused = ip("198.18.0.3");
    t.expire(0, kReachable);
    ASSERT_TRUE(t.learn(used, kMacA, 0));
    ASSERT_TRUE(t.learn(unused, kMacB, 0));
    MacAddr m{};
    for (uint64_t now = 500; now <= 20'000; now += 500) {
        t.expire(now, kReachable);
        ASSERT_TRUE(t.lookup(used, m)) << now;
        NeighbourTable::Info info{};
        EXPECT_EQ(t.info(unused, info), now < kIdle) << now;
    }
    EXPECT_EQ(t.stats().expired, 1u);
    EXPECT_EQ(t.size(), 1u);
    // Last use at 20 s: seen by the pass after it (the clock ticks every 1.024 s), gone idle_ms
    // after that, not before.
    uint64_t gone_at = 0;
    for (uint64_t now = 20'500; now <= 40'000 && gone_at == 0; now += 500) {
        t.expire(now, kReachable);
        NeighbourTable::Info info{};
        if (!t.info(used, info)) gone_at = now;
    }
    EXPECT_GE(gone_at, 20'000 + kIdle);
    EXPECT_LE(gone_at, 20'000 + kIdle + 2'000);
    EXPECT_EQ(t.stats().expired, 2u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.stats().evicted, 0u);
}

// Unresolved entries go kUnresolvedKeepMs after they were last asked about: a pending one
// nobody retries, one retried while frames waited, and one that went invalid.
TEST(NeighbourReclaim, PendingAndFailedEntriesAreReclaimed) {
    constexpr uint64_t kKeep = NeighbourTable::kUnresolvedKeepMs;
    NeighbourTable t(16, 1'000);
    const uint32_t once = ip("198.19.0.5"), retried = ip("198.19.0.6"), failed = ip("198.19.0.7");
    NeighbourTable::Info info{};
    ASSERT_TRUE(t.needs_request(once, 0));
    for (uint64_t at : {0, 250, 750, 1'750, 2'750}) ASSERT_TRUE(t.needs_request(retried, at)) << at;
    ASSERT_TRUE(t.learn(failed, kMacA, 0));
    EXPECT_EQ(t.expire(kKeep - 1, 1'000), 0u);  // failed: stale
    EXPECT_TRUE(t.info(once, info));
    EXPECT_EQ(t.expire(kKeep, 1'000), 1u);  // failed: invalid (no answer within the grace)
    EXPECT_FALSE(t.info(once, info));
    EXPECT_TRUE(t.info(retried, info));
    ASSERT_TRUE(t.info(failed, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Invalid);
    t.expire(2'750 + kKeep - 1, 1'000);
    EXPECT_TRUE(t.info(retried, info));
    t.expire(2'750 + kKeep, 1'000);
    EXPECT_FALSE(t.info(retried, info));
    t.expire(2 * kKeep - 1, 1'000);
    EXPECT_TRUE(t.info(failed, info));
    t.expire(2 * kKeep, 1'000);
    EXPECT_FALSE(t.info(failed, info));
    EXPECT_EQ(t.stats().expired, 3u);
    EXPECT_EQ(t.size(), 0u);
    // Reclaimed slots are reused: the table takes new entries (16 of them) again.
    for (uint32_t i = 0; i < 16; ++i) ASSERT_TRUE(t.learn(ip("198.18.1.0") + i, kMacB, 10'000));
    EXPECT_EQ(t.stats().evicted, 0u);
}

// The entry evicted for a new one is the least recently used: use moves an entry to the back,
// insertion puts it there, a reclaimed slot serves a new address.
TEST(NeighbourReclaim, FullTableEvictsInLeastRecentlyUsedOrder) {
    constexpr uint64_t kReachable = 1'000'000'000;
    NeighbourTable t(4, 5'000, 1'000'000);
    const uint32_t a = ip("198.18.0.2"), b = ip("198.18.0.3"), c = ip("198.18.0.4"),
                   d = ip("198.18.0.5"), e = ip("198.18.0.6"), f = ip("198.18.0.7"),
                   g = ip("198.18.0.8"), h = ip("198.18.0.9");
    t.expire(0, kReachable);
    for (uint32_t x : {a, b, c, d}) ASSERT_TRUE(t.learn(x, kMacA, 0));
    MacAddr m{};
    // a used in one tick, c in a later one: LRU order b, d, a, c.
    t.expire(1'024, kReachable);
    ASSERT_TRUE(t.lookup(a, m));
    t.expire(2'048, kReachable);
    ASSERT_TRUE(t.lookup(c, m));
    t.expire(3'072, kReachable);
    auto present = [&](uint32_t x) {
        NeighbourTable::Info info{};
        return t.info(x, info);
    };
    const std::vector<std::pair<uint32_t, uint32_t>> order{{e, b}, {f, d}, {g, a}, {h, c}};
    uint64_t evicted = 0;
    for (const auto& [add, gone] : order) {
        ASSERT_TRUE(t.learn(add, kMacB, 4'000));
        EXPECT_FALSE(present(gone));
        EXPECT_EQ(t.stats().evicted, ++evicted);
        EXPECT_EQ(t.size(), 4u);
    }
    for (uint32_t x : {e, f, g, h}) EXPECT_TRUE(present(x));
    // e is the oldest now, unless it is used.
    t.expire(5'120, kReachable);
    ASSERT_TRUE(t.lookup(e, m));
    t.expire(6'144, kReachable);
    ASSERT_TRUE(t.learn(a, kMacA, 6'200));
    EXPECT_TRUE(present(e));
    EXPECT_FALSE(present(f));
}

// A probe window with no free slot (addresses that all hash to the same home): the window's
// least recently used entry makes room, and every entry stays within reach of the readers.
TEST(NeighbourReclaim, FullProbeWindowEvictsItsOldestEntry) {
    NeighbourTable t(256);  // 512 slots, windows of kMaxProbe
    // Addresses sharing one home slot (the same hash as the table's).
    std::vector<uint32_t> same;
    for (uint32_t x = ip("10.0.0.1"); same.size() < NeighbourTable::kMaxProbe + 2; ++x) {
        const uint32_t hx = x * 0x9E3779B1u;
        if (((hx ^ (hx >> 16)) & 511u) == 7u) same.push_back(x);
    }
    for (uint32_t i = 0; i < NeighbourTable::kMaxProbe; ++i) ASSERT_TRUE(t.learn(same[i], kMacA, i));
    EXPECT_EQ(t.stats().evicted, 0u);
    ASSERT_TRUE(t.learn(same[NeighbourTable::kMaxProbe], kMacB, 100));
    EXPECT_EQ(t.stats().evicted, 1u);
    MacAddr m{};
    EXPECT_FALSE(t.lookup(same[0], m));  // the oldest of the window
    for (uint32_t i = 1; i <= NeighbourTable::kMaxProbe; ++i) EXPECT_TRUE(t.lookup(same[i], m)) << i;
    EXPECT_EQ(t.size(), NeighbourTable::kMaxProbe);
}

// One source (a host scanning a subnet through the gateway) gets pending_per_source pending
// entries; the rest are refused and counted, other sources are not affected, and the share comes
// back as its entries resolve or are reclaimed.
TEST(NeighbourPending, BoundedPerSource) {
    NeighbourTable t(4096, 5'000, NeighbourTable::kDefaultIdleMs, 8);
    const uint32_t scanner = ip("198.19.0.10"), other = ip("198.19.0.2");
    int due = 0, refused = 0;
    for (uint32_t i = 0; i < 1'000; ++i) {
        const auto r = t.request(ip("198.19.1.0") + i, 0, scanner);
        due += r == NeighbourTable::Request::Due;
        refused += r == NeighbourTable::Request::Refused;
    }
    EXPECT_EQ(due, 8);
    EXPECT_EQ(refused, 992);
    EXPECT_EQ(t.stats().pending_refused, 992u);
    EXPECT_EQ(t.pending_from(scanner), 8u);
    EXPECT_EQ(t.size(), 8u);
    // Asking again about an entry it has is no new entry: not refused, just not due yet.
    EXPECT_EQ(t.request(ip("198.19.1.0"), 1, scanner), NeighbourTable::Request::NotDue);
    EXPECT_EQ(t.request(ip("198.18.0.2"), 1, other), NeighbourTable::Request::Due);
    // One answered: room for one more.
    ASSERT_TRUE(t.learn(ip("198.19.1.3"), kMacA, 2));
    EXPECT_EQ(t.pending_from(scanner), 7u);
    EXPECT_EQ(t.request(ip("198.19.2.0"), 3, scanner), NeighbourTable::Request::Due);
    EXPECT_EQ(t.request(ip("198.19.2.1"), 3, scanner), NeighbourTable::Request::Refused);
    // Unasked for kUnresolvedKeepMs: reclaimed, the share is back.
    t.expire(3 + NeighbourTable::kUnresolvedKeepMs, 30'000);
    EXPECT_EQ(t.pending_from(scanner), 0u);
    EXPECT_EQ(t.request(ip("198.19.2.1"), 4'000, scanner), NeighbourTable::Request::Due);
    // The writer's own requests (configured next hops) are not bounded.
    for (uint32_t i = 0; i < 20; ++i) EXPECT_TRUE(t.needs_request(ip("198.19.3.0") + i, 4'000));
}

// The configured next hop is pinned: 50,000 gratuitous ARP from distinct addresses fill the
// table to its unsolicited limit and no further, those claiming the next hop's address with
// another MAC change nothing (the next hop is marked stale so that it is asked again), and a new
// host still resolves afterwards.
TEST(NeighbourPinned, SurvivesAFloodOfGratuitousArpFrom50000Addresses) {
    using L = NeighbourTable::ArpLearn;
    NeighbourTable t(4096);
    const uint32_t gw = ip("198.19.0.254");
    const MacAddr gw_mac{0x02, 0, 0, 0, 0xfe, 0xfe};
    ASSERT_TRUE(t.pin(gw, 0));
    ASSERT_TRUE(t.retry(gw, 0));  // our request ...
    ASSERT_EQ(t.learn_from_arp(gw, gw_mac, true, 1), L::Learned);  // ... and its answer
    std::map<L, int> outcome;
    uint64_t now = 1;
    for (uint32_t i = 0; i < 50'000; ++i) {
        const uint32_t a = ip("10.0.0.0") + 1 + i;
        const MacAddr mac{0x02, 0x66, uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)};
        ++outcome[t.learn_from_arp(a, mac, i % 2 == 0, now)];
        if (i % 1'000 == 0) {  // and the next hop's address, claimed by the flooder
            EXPECT_EQ(t.learn_from_arp(gw, mac, i % 2000 == 0, now), L::IgnoredPinned);
            MacAddr m{};
            ASSERT_TRUE(t.lookup(gw, m));
            ASSERT_EQ(m, gw_mac);
        }
        if (i % 100 == 0) t.expire(now += 10, 30'000);
    }
    EXPECT_EQ(outcome[L::Learned], int(t.unsolicited_limit()) - 1);  // the next hop is one
    EXPECT_EQ(outcome[L::IgnoredPressure], 50'000 - outcome[L::Learned]);
    EXPECT_EQ(outcome[L::NoRoom], 0);
    EXPECT_LE(t.size(), t.unsolicited_limit());
    NeighbourTable::Info info{};
    ASSERT_TRUE(t.info(gw, info));
    EXPECT_TRUE(info.pinned);
    EXPECT_EQ(info.mac, gw_mac);
    EXPECT_EQ(info.state, NeighbourTable::State::Stale);  // to be asked again
    EXPECT_EQ(t.due_refreshes(now + 1'000), std::vector<uint32_t>{gw});
    ASSERT_TRUE(t.retry(gw, now + 1'000));
    EXPECT_EQ(t.learn_from_arp(gw, gw_mac, true, now + 1'001), L::Learned);
    ASSERT_TRUE(t.info(gw, info));
    EXPECT_EQ(info.state, NeighbourTable::State::Reachable);
    // A new host (frames from the server wait for it) still resolves.
    const uint32_t host = ip("10.1.0.1");
    EXPECT_EQ(t.request(host, now + 2'000, gw), NeighbourTable::Request::Due);
    EXPECT_EQ(t.learn_from_arp(host, kMacA, true, now + 2'001), L::Learned);
    MacAddr m{};
    ASSERT_TRUE(t.lookup(host, m));
    EXPECT_EQ(m, kMacA);
    // A real change of the next hop's MAC is learnt from the answer to our request.
    const MacAddr moved{0x02, 0, 0, 0, 0xfe, 0x01};
    EXPECT_EQ(t.learn_from_arp(gw, moved, false, now + 3'000), L::IgnoredPinned);
    ASSERT_TRUE(t.retry(gw, now + 3'000));
    EXPECT_EQ(t.learn_from_arp(gw, moved, true, now + 3'001), L::Learned);
    ASSERT_TRUE(t.lookup(gw, m));
    EXPECT_EQ(m, moved);
}

// A table full of used entries, a scan (pending from one source) and an unsolicited flood: a new
// host still gets a slot (the least recently used entry goes) and resolves.
TEST(NeighbourPinned, AfterAFloodANewHostStillResolves) {
    using L = NeighbourTable::ArpLearn;
    constexpr uint64_t kReachable = 30'000;
    NeighbourTable t(256, 5'000, NeighbourTable::kDefaultIdleMs, 16);
    const uint32_t gw = ip("198.19.0.254");
    ASSERT_TRUE(t.pin(gw, 0));
    ASSERT_TRUE(t.learn(gw, kMacB, 0));
    uint64_t now = 0;
    // 300 hosts answer our requests, and are used: more than the table holds.
    for (uint32_t i = 0; i < 300; ++i) {
        const uint32_t a = ip("10.0.0.0") + 1 + i;
        ASSERT_EQ(t.request(a, now, gw), NeighbourTable::Request::Due);
        ASSERT_EQ(t.learn_from_arp(a, kMacA, true, now), L::Learned);
        MacAddr m{};
        ASSERT_TRUE(t.lookup(a, m));
    }
    EXPECT_EQ(t.size(), 256u);
    EXPECT_EQ(t.stats().evicted, 300u - 255u);
    // A scan: 10,000 next hops for frames of one source; an unsolicited flood.
    for (uint32_t i = 0; i < 10'000; ++i) t.request(ip("198.19.128.0") + i, now, ip("198.19.0.10"));
    for (uint32_t i = 0; i < 10'000; ++i) t.learn_from_arp(ip("10.2.0.0") + i, kMacA, false, now);
    EXPECT_EQ(t.stats().pending_refused, 10'000u - 16u);
    EXPECT_EQ(t.size(), 256u);
    now += 1'500;
    t.expire(now, kReachable);
    const uint32_t host = ip("10.1.0.1");
    ASSERT_EQ(t.request(host, now, ip("198.19.0.2")), NeighbourTable::Request::Due);
    ASSERT_EQ(t.learn_from_arp(host, kMacB, true, now + 1), L::Learned);
    MacAddr m{};
    ASSERT_TRUE(t.lookup(host, m));
    EXPECT_EQ(m, kMacB);
    ASSERT_TRUE(t.lookup(gw, m));
    EXPECT_EQ(m, kMacB);
    EXPECT_EQ(t.stats().table_full, 0u);
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

// Reclamation under readers: the writer churns 20,000 addresses through a table of 512 (every
// insertion evicts, expire() reclaims, slots are reused for other addresses and generations
// turn), while two readers look up addresses of the whole range. A MAC always encodes its own
// address and version: a reader must never get another address's MAC (a slot reused between
// its loads) or a torn one. Bounded: 2 s of writer time at most.
TEST(NeighbourConcurrent, ReadersNeverSeeAForeignMacWhileSlotsAreReclaimed) {
    constexpr uint32_t kAddresses = 20'000;
    NeighbourTable t(512, 50, /*idle_ms=*/50);
    const uint32_t base = ip("10.0.0.0");
    std::atomic<bool> done{false};
    std::atomic<uint64_t> bad{0};
    std::atomic<uint64_t> hits[2] = {0, 0};

    auto reader = [&](int id) {
        uint32_t i = static_cast<uint32_t>(id) * 7919;
        uint64_t h = 0;
        while (!done.load(std::memory_order_acquire)) {
            for (int k = 0; k < 256; ++k) {
                i = (i + 4099) % kAddresses;
                const uint32_t a = base + 1 + i;
                MacAddr m{};
                if (t.lookup(a, m)) {
                    ++h;
                    if (!consistent(a, m)) bad.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
        hits[id].store(h);
    };
    std::thread r0(reader, 0), r1(reader, 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    uint64_t now = 0;
    uint32_t round = 0;
    while (round < 400 && std::chrono::steady_clock::now() < deadline) {
        if (round % 10 == 9) {  // a pause: what is not used in a use tick (1.024 s) ages out
            for (int k = 0; k < 4; ++k) t.expire(now += 300, 30);
            ++round;
            continue;
        }
        for (uint32_t k = 0; k < 1'000; ++k) {
            const uint32_t i = (round * 1'000 + k * 7) % kAddresses;
            const uint32_t a = base + 1 + i;
            if (k % 5 == 0) t.needs_request(a, now);
            else t.learn(a, versioned_mac(a, static_cast<uint8_t>(round + k)), now);
        }
        now += 100;
        t.expire(now, 30);
        ++round;
    }
    done.store(true, std::memory_order_release);
    r0.join();
    r1.join();
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_GT(round, 10u);
    EXPECT_GT(t.stats().evicted, 10'000u) << "the test proved nothing: no slot was reused";
    EXPECT_GT(t.stats().expired, 0u);
    for (int id = 0; id < 2; ++id)
        EXPECT_GT(hits[id].load(), 0u) << "reader " << id << " never found anything";
    EXPECT_LE(t.size(), 512u);
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
