// Tests the per-worker public port partitions and PortAllocator (dataplane/port_allocator.h).
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <map>
#include <memory>

#include "nat_config.h"
#include "port_allocator.h"
#include "port_state.h"

namespace snatgw {
namespace {

constexpr uint32_t kAddrA = 0xC6130A0Au;  // 198.19.10.10 (any value works: the allocator keys on it)
constexpr uint32_t kAddrB = 0xC6130A0Bu;  // 198.19.10.11

const std::vector<uint16_t> kWorkerCounts = {1, 2, 3, 4, 7, 8, 64};

struct Range {
    uint16_t min, max;
};

// Ranges with edge cases: whole space, one port, fewer ports than workers, ends of the space,
// a range exactly 64 ports wide, ranges not aligned to any worker count.
const std::vector<Range> kRanges = {
    {1024, 65535}, {1, 65535},   {0, 65535},     {5000, 5000}, {65535, 65535}, {1, 1},
    {100, 102},    {65530, 65535}, {1024, 1087}, {60000, 65535}, {2, 9},       {1000, 1062},
};

std::string describe(Range r, uint16_t worker, uint16_t workers) {
    std::string s = "range ";
    s += std::to_string(r.min);
    s += '-';
    s += std::to_string(r.max);
    s += " worker ";
    s += std::to_string(worker);
    s += '/';
    s += std::to_string(workers);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Partition::of
// ---------------------------------------------------------------------------------------------

TEST(PortAllocatorPartition, DisjointExactCoverAndOwnerForAllCombos) {
    for (const Range r : kRanges) {
        for (const uint16_t workers : kWorkerCounts) {
            std::vector<Partition> parts;
            for (uint16_t w = 0; w < workers; ++w)
                parts.push_back(Partition::of(r.min, r.max, w, workers));

            // Which worker's partition lists each port (by port_at over its count).
            std::vector<int> listed_by(65536, -1);
            uint64_t total = 0;
            for (uint16_t w = 0; w < workers; ++w) {
                const Partition& p = parts[w];
                const std::string where = describe(r, w, workers);
                // Brute-force expected size: ports of the range with port % workers == w.
                uint32_t expected = 0;
                for (uint32_t port = r.min; port <= r.max; ++port)
                    if (port % workers == w) ++expected;
                ASSERT_EQ(p.count, expected) << where;
                total += p.count;
                for (uint32_t i = 0; i < p.count; ++i) {
                    const uint16_t port = p.port_at(i);
                    ASSERT_GE(port, r.min) << where << " index " << i;
                    ASSERT_LE(port, r.max) << where << " index " << i;
                    ASSERT_EQ(port_owner(port, workers), w) << where << " port " << port;
                    ASSERT_TRUE(p.contains(port)) << where << " port " << port;
                    ASSERT_EQ(p.index_of(port), i) << where << " port " << port;
                    ASSERT_EQ(listed_by[port], -1)
                        << where << ": port " << port << " also in worker " << listed_by[port];
                    listed_by[port] = w;
                }
            }
            // The union is exactly [min, max].
            ASSERT_EQ(total, uint64_t{r.max} - r.min + 1) << describe(r, 0, workers);
            for (uint32_t port = 0; port <= 65535; ++port) {
                const bool in_range = port >= r.min && port <= r.max;
                ASSERT_EQ(listed_by[port] != -1, in_range)
                    << describe(r, 0, workers) << " port " << port;
                // contains() says yes for exactly the owner, and only inside the range.
                for (uint16_t w = 0; w < workers; ++w) {
                    const bool expect = in_range && port % workers == w;
                    ASSERT_EQ(parts[w].contains(static_cast<uint16_t>(port)), expect)
                        << describe(r, w, workers) << " port " << port;
                }
            }
        }
    }
}

TEST(PortAllocatorPartition, RangeSmallerThanWorkersLeavesSomeWorkersEmpty) {
    // 100..102 with 8 workers: owners 100%8=4, 5, 6; the other five have nothing.
    for (uint16_t w = 0; w < 8; ++w) {
        const Partition p = Partition::of(100, 102, w, 8);
        if (w >= 4 && w <= 6) {
            EXPECT_EQ(p.count, 1u) << "worker " << w;
            EXPECT_EQ(p.first, 100 + (w - 4)) << "worker " << w;
        } else {
            EXPECT_EQ(p.count, 0u) << "worker " << w;
            for (uint32_t port = 0; port <= 65535; ++port)
                ASSERT_FALSE(p.contains(static_cast<uint16_t>(port))) << "worker " << w;
        }
    }
    // min == max: exactly one worker owns the single port.
    const Partition own = Partition::of(5000, 5000, 5000 % 7, 7);
    EXPECT_EQ(own.count, 1u);
    EXPECT_EQ(own.first, 5000);
    EXPECT_EQ(own.port_at(0), 5000);
    EXPECT_EQ(Partition::of(5000, 5000, (5000 % 7 + 1) % 7, 7).count, 0u);
}

TEST(PortAllocatorPartition, KnownValues) {
    // 1024-65535, 4 workers: 1024 % 4 == 0, so worker w starts at 1024 + w, 16128 ports each.
    for (uint16_t w = 0; w < 4; ++w) {
        const Partition p = Partition::of(1024, 65535, w, 4);
        EXPECT_EQ(p.first, 1024 + w);
        EXPECT_EQ(p.step, 4);
        EXPECT_EQ(p.count, 16128u);
        EXPECT_EQ(p.port_at(p.count - 1), 65532 + w);
    }
    // 1-65535, 1 worker: every port.
    const Partition all = Partition::of(1, 65535, 0, 1);
    EXPECT_EQ(all.first, 1);
    EXPECT_EQ(all.count, 65535u);
    EXPECT_EQ(all.port_at(65534), 65535);
    // 1-65535, 3 workers: 65535 = 3 * 21845, worker 0 gets 3..65535.
    const Partition w0 = Partition::of(1, 65535, 0, 3);
    EXPECT_EQ(w0.first, 3);
    EXPECT_EQ(w0.count, 21845u);
    EXPECT_EQ(w0.port_at(w0.count - 1), 65535);
    // 65530-65535, 64 workers: one port each for owners 65530%64=58 .. 63.
    EXPECT_EQ(Partition::of(65530, 65535, 63, 64).count, 1u);
    EXPECT_EQ(Partition::of(65530, 65535, 63, 64).first, 65535);
    EXPECT_EQ(Partition::of(65530, 65535, 57, 64).count, 0u);
}

TEST(PortAllocatorPartition, InvalidInputsGiveEmptyPartition) {
    EXPECT_EQ(Partition::of(2000, 1000, 0, 1).count, 0u);  // min > max
    EXPECT_EQ(Partition::of(1024, 65535, 4, 4).count, 0u);  // worker out of range
    EXPECT_EQ(Partition::of(1024, 65535, 0, 0).count, 0u);  // no workers
    EXPECT_FALSE(Partition::of(2000, 1000, 0, 1).contains(1500));
}

// ---------------------------------------------------------------------------------------------
// PortAllocator
// ---------------------------------------------------------------------------------------------

// A PortAllocator driven as the engine drives it: its addresses come in a snapshot whose port
// state PortStateStore builds (each address its own pool, so each keeps its own range), adopted
// with a pointer swap; acquire() tells whether the session owns its port, and a session gives
// that back on release. release_user() releases the newest user of a port (sharers before the
// owner, as a count would).
class Ports {
public:
    Ports(uint16_t worker, uint16_t workers, uint64_t seed)
        : pa_(worker, workers, seed), store_(workers), worker_(worker) {
        cfg_.workers = workers;
        rebuild();
    }
    PortAllocator& pa() { return pa_; }

    // `addr` as the allocator keys it (wire order); a snapshot lists addresses in host order.
    void add_address(uint32_t addr, uint16_t min, uint16_t max) {
        Pool& p = pool_of(addr);
        const uint32_t a = ntohl(addr);
        std::erase(p.draining, a);
        if (std::find(p.addresses.begin(), p.addresses.end(), a) == p.addresses.end())
            p.addresses.push_back(a);
        p.port_min = min;
        p.port_max = max;
        rebuild();
    }
    void set_draining(uint32_t addr) {
        Pool& p = pool_of(addr);
        std::erase(p.addresses, ntohl(addr));
        p.draining.push_back(ntohl(addr));
        rebuild();
    }
    void forget(uint32_t addr) {
        Pool& p = pool_of(addr);
        std::erase(p.addresses, ntohl(addr));
        std::erase(p.draining, ntohl(addr));
        rebuild();
    }
    const NatConfig& config() const { return cfg_; }

    template <typename P, typename T>
    std::optional<uint16_t> allocate(uint32_t addr, PortSpace sp, P&& pairs, T&& taken) {
        return pa_.allocate(addr, sp, pairs, taken);
    }
    bool acquire(uint32_t addr, PortSpace sp, uint16_t port) {
        const bool owner = pa_.acquire(addr, sp, port);
        users_[{addr, static_cast<int>(sp), port}].push_back(owner);
        return owner;
    }
    void release_user(uint32_t addr, PortSpace sp, uint16_t port) {
        auto& u = users_[{addr, static_cast<int>(sp), port}];
        ASSERT_FALSE(u.empty()) << "port " << port << " has no user to release";
        pa_.release(addr, sp, port, u.back());
        u.pop_back();
    }
    uint32_t users(uint32_t addr, PortSpace sp, uint16_t port) {
        return static_cast<uint32_t>(users_[{addr, static_cast<int>(sp), port}].size());
    }
    bool owned(uint32_t addr, PortSpace sp, uint16_t port) const { return pa_.owned(addr, sp, port); }
    uint32_t ports_in_use(uint32_t addr, PortSpace sp) const { return pa_.ports_in_use(addr, sp); }
    uint32_t partition_size(uint32_t addr) const { return pa_.partition_size(addr); }
    bool has_address(uint32_t addr) const { return pa_.has_address(addr); }
    uint16_t worker() const { return pa_.worker(); }
    uint16_t workers() const { return pa_.workers(); }

private:
    Pool& pool_of(uint32_t addr) {
        for (Pool& p : cfg_.pools)
            if (p.name == std::to_string(addr)) return p;
        Pool p;
        p.id = static_cast<uint16_t>(cfg_.pools.size());
        p.name = std::to_string(addr);
        cfg_.pools.push_back(p);
        return cfg_.pools.back();
    }
    void rebuild() {
        indexes_.push_back(store_.build(cfg_, worker_));
        pa_.adopt(indexes_.back().get());
    }

    PortAllocator pa_;
    PortStateStore store_;
    uint16_t worker_;
    NatConfig cfg_;
    std::vector<std::shared_ptr<const PortIndex>> indexes_;  // older snapshots stay valid
    std::map<std::tuple<uint32_t, int, uint16_t>, std::vector<bool>> users_;
};

auto never_taken = [](uint16_t) { return false; };
auto always_taken = [](uint16_t) { return true; };
// The pair count of a remote without sessions (allocate asks it only when every port is used).
auto no_pairs = [] { return 0u; };

TEST(PortAllocatorAlloc, ReturnsOnlyPortsOfItsOwnPartition) {
    for (const uint16_t workers : kWorkerCounts) {
        for (uint16_t w = 0; w < workers; w = static_cast<uint16_t>(w + (workers > 8 ? 9 : 1))) {
            Ports pa(w, workers, 1000 + w);
            EXPECT_EQ(pa.worker(), w);
            EXPECT_EQ(pa.workers(), workers);
            pa.add_address(kAddrA, 1024, 65535);
            const Partition part = Partition::of(1024, 65535, w, workers);
            ASSERT_EQ(pa.partition_size(kAddrA), part.count);
            // Plenty of allocations, half of them acquired, through the unused path and, once
            // everything is in use, the taken() path.
            const uint32_t n = std::min<uint32_t>(part.count + 200, 3000);
            for (uint32_t i = 0; i < n; ++i) {
                const auto port = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
                ASSERT_TRUE(port.has_value()) << describe({1024, 65535}, w, workers);
                ASSERT_TRUE(part.contains(*port)) << describe({1024, 65535}, w, workers)
                                                  << " port " << *port;
                ASSERT_EQ(port_owner(*port, workers), w) << "port " << *port;
                if (i % 2 == 0) pa.acquire(kAddrA, PortSpace::Tcp, *port);
            }
        }
    }
}

TEST(PortAllocatorAlloc, EmptyPartitionAllocatesNothing) {
    // 100-102 with 8 workers: worker 0 owns none of them.
    Ports pa(0, 8, 7);
    pa.add_address(kAddrA, 100, 102);
    EXPECT_TRUE(pa.has_address(kAddrA));
    EXPECT_EQ(pa.partition_size(kAddrA), 0u);
    bool asked = false;
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs,
                          [&](uint16_t) {
                              asked = true;
                              return false;
                          }),
              std::nullopt);
    EXPECT_FALSE(asked);
    // Worker 5 owns exactly port 101.
    Ports pb(5, 8, 7);
    pb.add_address(kAddrA, 100, 102);
    EXPECT_EQ(pb.partition_size(kAddrA), 1u);
    EXPECT_EQ(pb.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken), std::optional<uint16_t>(101));
}

// With k ports in a partition, k allocations (each acquired, each toward a different remote so
// taken() is always false) give k distinct ports: unused ports are preferred.
TEST(PortAllocatorAlloc, PrefersUnusedPortsDistinctUntilAllInUse) {
    // Partition sizes around the 64-bit bitmap word boundaries.
    const std::vector<std::pair<Range, uint16_t>> cases = {
        {{1024, 1024}, 1}, {{1024, 1086}, 1}, {{1024, 1087}, 1}, {{1024, 1088}, 1},
        {{1024, 1151}, 1}, {{1024, 1152}, 1}, {{1024, 1279}, 4}, {{1000, 1500}, 7},
        {{1024, 9999}, 3}, {{1, 65535}, 64},
    };
    for (const auto& [r, workers] : cases) {
        for (uint16_t w : {uint16_t{0}, static_cast<uint16_t>(workers - 1)}) {
            const std::string where = describe(r, w, workers);
            Ports pa(w, workers, 99);
            pa.add_address(kAddrA, r.min, r.max);
            const Partition part = Partition::of(r.min, r.max, w, workers);
            const uint32_t k = pa.partition_size(kAddrA);
            ASSERT_EQ(k, part.count) << where;
            std::set<uint16_t> got;
            uint32_t taken_calls = 0;
            for (uint32_t i = 0; i < k; ++i) {
                const auto port = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, [&](uint16_t) {
                    ++taken_calls;
                    return false;
                });
                ASSERT_TRUE(port.has_value()) << where << " allocation " << i;
                ASSERT_TRUE(part.contains(*port)) << where << " port " << *port;
                ASSERT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, *port)) << where;
                ASSERT_TRUE(got.insert(*port).second) << where << ": port " << *port << " twice";
                pa.acquire(kAddrA, PortSpace::Tcp, *port);
                ASSERT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), i + 1) << where;
            }
            // While unused ports exist the session table is never consulted.
            EXPECT_EQ(taken_calls, 0u) << where;
            ASSERT_EQ(got.size(), k) << where;
            // Now every port has a user: a free (port, remote) pair is still fine...
            const auto extra = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
            ASSERT_TRUE(extra.has_value()) << where;
            EXPECT_TRUE(part.contains(*extra)) << where;
            EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, *extra)) << where;
            // ...and when every pair is taken, exhaustion is a clean nullopt.
            EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt) << where;
        }
    }
}

// Every port in use, a partition no larger than the probe budget: allocate asks taken() about
// every port exactly once before giving up, and returns the one port whose pair is free
// wherever the random start is.
TEST(PortAllocatorAlloc, AllInUseFindsTheOneFreePairAndProbesEachPortOnce) {
    const uint16_t workers = 4, w = 3;
    Ports pa(w, workers, 4242);
    pa.add_address(kAddrA, 1024, 1535);  // 128 ports for worker 3: 1027, 1031, ..., 1535
    const Partition part = Partition::of(1024, 1535, w, workers);
    ASSERT_EQ(part.count, 128u);
    for (uint32_t i = 0; i < part.count; ++i) pa.acquire(kAddrA, PortSpace::Udp, part.port_at(i));
    ASSERT_EQ(pa.ports_in_use(kAddrA, PortSpace::Udp), 128u);

    for (int round = 0; round < 50; ++round) {
        std::vector<uint32_t> asked(65536, 0);
        EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Udp, no_pairs,
                              [&](uint16_t p) {
                                  ++asked[p];
                                  return true;
                              }),
                  std::nullopt);
        for (uint32_t port = 0; port < 65536; ++port)
            ASSERT_EQ(asked[port], part.contains(static_cast<uint16_t>(port)) ? 1u : 0u)
                << "round " << round << " port " << port;
    }
    std::mt19937 rng(5);
    for (int round = 0; round < 500; ++round) {
        const uint16_t free_port = part.port_at(rng() % part.count);
        const auto port =
            pa.allocate(kAddrA, PortSpace::Udp, no_pairs, [&](uint16_t p) { return p != free_port; });
        ASSERT_EQ(port, std::optional<uint16_t>(free_port)) << "round " << round;
    }
}

// Every port in use on a full-size partition: a remote that holds every pair is refused without
// a single probe (O(1), from the pair count), and otherwise at most kMaxProbes distinct ports
// are probed: never a scan of the 64,512 ports.
TEST(PortAllocatorAlloc, AllInUseRefusesInConstantTimeAndProbesBounded) {
    Ports pa(0, 1, 77);
    pa.add_address(kAddrA, 1024, 65535);
    const uint32_t span = pa.partition_size(kAddrA);
    ASSERT_EQ(span, 64512u);
    for (uint32_t p = 1024; p <= 65535; ++p)
        pa.acquire(kAddrA, PortSpace::Tcp, static_cast<uint16_t>(p));
    uint32_t asked = 0;
    auto count_asks = [&](uint16_t) {
        ++asked;
        return true;
    };
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, [&] { return span; }, count_asks), std::nullopt);
    EXPECT_EQ(asked, 0u);
    std::set<uint16_t> distinct;
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, [&] { return span - 1; },
                          [&](uint16_t p) {
                              ++asked;
                              distinct.insert(p);
                              return true;
                          }),
              std::nullopt);
    EXPECT_EQ(asked, PortAllocator::kMaxProbes);
    EXPECT_EQ(distinct.size(), PortAllocator::kMaxProbes);
    // A port released lately is probed first.
    pa.release_user(kAddrA, PortSpace::Tcp, 4242);
    pa.acquire(kAddrA, PortSpace::Tcp, 4242);  // used again, toward another remote
    uint16_t first = 0;
    const auto got = pa.allocate(kAddrA, PortSpace::Tcp, [&] { return 10u; }, [&](uint16_t p) {
        if (first == 0) first = p;
        return false;
    });
    EXPECT_EQ(first, 4242);
    EXPECT_EQ(got, std::optional<uint16_t>(4242));
}

TEST(PortAllocatorAlloc, StartPointIsRandom) {
    // Different seeds: different first ports (fixed seeds, so this is deterministic).
    Ports a(0, 1, 1), b(0, 1, 2);
    a.add_address(kAddrA, 1024, 65535);
    b.add_address(kAddrA, 1024, 65535);
    const auto pa = a.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
    const auto pb = b.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
    ASSERT_TRUE(pa && pb);
    EXPECT_NE(*pa, *pb);

    // The first port of 1000 fresh allocators (seeds 1..1000) is spread over the range.
    std::set<uint16_t> firsts;
    for (uint64_t seed = 1; seed <= 1000; ++seed) {
        Ports x(0, 1, seed * 0x9E3779B97F4A7C15ull);
        x.add_address(kAddrA, 1024, 65535);
        firsts.insert(*x.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken));
    }
    EXPECT_GE(firsts.size(), 950u);  // birthday bound: ~992 expected from 64512 ports
    EXPECT_LT(*firsts.begin(), 1024 + 64512 / 8);
    EXPECT_GT(*firsts.rbegin(), 65535 - 64512 / 8);

    // One allocator, fresh state each time (no acquire): 1000 allocations are not one port.
    Ports y(2, 4, 77);
    y.add_address(kAddrA, 1024, 65535);
    std::set<uint16_t> seen;
    std::vector<uint32_t> buckets(8, 0);
    for (int i = 0; i < 8000; ++i) {
        const uint16_t p = *y.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
        ASSERT_EQ(port_owner(p, 4), 2);
        if (i < 1000) seen.insert(p);
        ++buckets[(p - 1024u) * 8 / 64512];
    }
    EXPECT_GE(seen.size(), 950u);
    for (int k = 0; k < 8; ++k) {
        EXPECT_GT(buckets[k], 700u) << "bucket " << k;   // 1000 expected in each
        EXPECT_LT(buckets[k], 1300u) << "bucket " << k;
    }

    // Acquiring each: the sequence is not sequential (next = previous + step).
    Ports z(1, 2, 31337);
    z.add_address(kAddrA, 1024, 65535);
    uint16_t prev = 0;
    int sequential = 0;
    for (int i = 0; i < 1000; ++i) {
        const uint16_t p = *z.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken);
        z.acquire(kAddrA, PortSpace::Tcp, p);
        if (i > 0 && p == prev + 2) ++sequential;
        prev = p;
    }
    EXPECT_LT(sequential, 50);
}

TEST(PortAllocatorAlloc, AcquireOwnsOrSharesAndReleaseGivesBack) {
    Ports pa(1, 2, 5);
    pa.add_address(kAddrA, 1024, 2047);  // 512 odd ports
    EXPECT_EQ(pa.partition_size(kAddrA), 512u);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), 0u);
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, 1025));

    EXPECT_TRUE(pa.acquire(kAddrA, PortSpace::Tcp, 1025));   // the first user owns the port
    EXPECT_FALSE(pa.acquire(kAddrA, PortSpace::Tcp, 1025));  // later ones share it
    EXPECT_FALSE(pa.acquire(kAddrA, PortSpace::Tcp, 1025));
    EXPECT_TRUE(pa.acquire(kAddrA, PortSpace::Tcp, 2047));
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, 1025));
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, 2047));
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, 1027));
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), 2u);
    EXPECT_EQ(pa.pa().sharers(kAddrA, PortSpace::Tcp), 2u);
    EXPECT_EQ(pa.pa().sessions_on(kAddrA), 4u);

    // A sharer ends: the owner keeps the port.
    pa.pa().release(kAddrA, PortSpace::Tcp, 1025, false);
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, 1025));
    EXPECT_EQ(pa.pa().sharers(kAddrA, PortSpace::Tcp), 1u);
    // The owner ends while a sharer remains: the port reads unowned again...
    pa.pa().release(kAddrA, PortSpace::Tcp, 1025, true);
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, 1025));
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), 1u);
    EXPECT_EQ(pa.pa().sessions_on(kAddrA), 2u);
    // ...and, the address having a sharer, allocation asks the session table before handing an
    // unowned port out: 1025 is the only unowned port left.
    for (uint16_t p = 1027; p < 2047; p += 2) pa.acquire(kAddrA, PortSpace::Tcp, p);
    uint32_t asked_1025 = 0;
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs,
                          [&](uint16_t p) {
                              asked_1025 += p == 1025;
                              return true;
                          }),
              std::nullopt);
    EXPECT_GE(asked_1025, 1u);
    // Once as the unowned port; the probes may ask again: twice from the lately released ring
    // (it was released twice), once at random.
    EXPECT_LE(asked_1025, 4u);
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, [](uint16_t p) { return p != 1025; }),
              std::optional<uint16_t>(1025));
    pa.pa().release(kAddrA, PortSpace::Tcp, 1025, false);  // the last sharer
    EXPECT_EQ(pa.pa().sharers(kAddrA, PortSpace::Tcp), 0u);
    // No sharer left: an unowned port is unused, the session table is not asked.
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::optional<uint16_t>(1025));

    // Not ours, outside the range, unknown address: not owned, nothing in use.
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, 1024));
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, 4001));
    EXPECT_FALSE(pa.owned(kAddrB, PortSpace::Tcp, 1025));
    EXPECT_EQ(pa.ports_in_use(kAddrB, PortSpace::Tcp), 0u);
    EXPECT_EQ(pa.partition_size(kAddrB), 0u);
    EXPECT_EQ(pa.pa().sessions_on(kAddrB), 0u);
}

// Random acquire/release of owners and sharers against a model of what each port holds.
TEST(PortAllocatorAlloc, OwnersAndSharersFollowAModel) {
    Ports pa(0, 1, 21);
    pa.add_address(kAddrA, 2000, 2511);  // 512 ports
    struct PortModel {
        bool owner = false;
        uint32_t sharers = 0;
    };
    std::vector<PortModel> model(512);
    uint32_t owners = 0, sharers = 0;
    std::mt19937 rng(9);
    for (int i = 0; i < 30000; ++i) {
        const uint32_t idx = rng() % 512;
        const uint16_t port = static_cast<uint16_t>(2000 + idx);
        PortModel& m = model[idx];
        const uint32_t op = rng() % 3;
        if (op == 0 || (!m.owner && m.sharers == 0)) {
            const bool expect_owner = !m.owner;
            ASSERT_EQ(pa.pa().acquire(kAddrA, PortSpace::Udp, port), expect_owner) << "step " << i;
            if (expect_owner) m.owner = true, ++owners;
            else ++m.sharers, ++sharers;
        } else if (op == 1 && m.owner) {
            pa.pa().release(kAddrA, PortSpace::Udp, port, true);
            m.owner = false, --owners;
        } else if (m.sharers > 0) {
            pa.pa().release(kAddrA, PortSpace::Udp, port, false);
            --m.sharers, --sharers;
        }
        ASSERT_EQ(pa.owned(kAddrA, PortSpace::Udp, port), m.owner) << "step " << i;
        ASSERT_EQ(pa.ports_in_use(kAddrA, PortSpace::Udp), owners) << "step " << i;
        ASSERT_EQ(pa.pa().sharers(kAddrA, PortSpace::Udp), sharers) << "step " << i;
    }
    // Whatever is unowned is what allocate may give without a sharer check.
    for (int i = 0; i < 200; ++i) {
        const auto p = pa.allocate(kAddrA, PortSpace::Udp, no_pairs, never_taken);
        ASSERT_TRUE(p.has_value());
        if (owners < 512) {
            ASSERT_FALSE(model[*p - 2000].owner) << "port " << *p;
        }
    }
}

TEST(PortAllocatorAlloc, ReleaseOfLastUserMakesPortPreferredAgain) {
    Ports pa(0, 4, 123);
    pa.add_address(kAddrA, 1024, 65535);
    const uint32_t k = pa.partition_size(kAddrA);
    ASSERT_EQ(k, 16128u);
    const Partition part = Partition::of(1024, 65535, 0, 4);
    for (uint32_t i = 0; i < k; ++i) pa.acquire(kAddrA, PortSpace::Tcp, part.port_at(i));
    // A second user on a few ports.
    for (uint32_t i = 0; i < k; i += 97) pa.acquire(kAddrA, PortSpace::Tcp, part.port_at(i));
    ASSERT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), k);

    std::mt19937 rng(17);
    for (int round = 0; round < 300; ++round) {
        const uint32_t i = rng() % k;
        const uint16_t port = part.port_at(i);
        const uint32_t users = pa.users(kAddrA, PortSpace::Tcp, port);
        ASSERT_GE(users, 1u);
        // Releasing the sharers keeps the owner: still nothing unowned.
        for (uint32_t u = 1; u < users; ++u) pa.release_user(kAddrA, PortSpace::Tcp, port);
        ASSERT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
        // Releasing the owner: it is the only unowned port, so it comes back first (checked
        // against the session table once while other ports of the address are shared).
        pa.release_user(kAddrA, PortSpace::Tcp, port);
        ASSERT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), k - 1);
        for (int again = 0; again < 3; ++again) {
            uint32_t asked = 0;
            ASSERT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs,
                                  [&](uint16_t) {
                                      ++asked;
                                      return false;
                                  }),
                      std::optional<uint16_t>(port))
                << "round " << round;
            ASSERT_EQ(asked, pa.pa().sharers(kAddrA, PortSpace::Tcp) > 0 ? 1u : 0u);
        }
        pa.acquire(kAddrA, PortSpace::Tcp, port);
    }
}

// A range change moves the allocatable window without rebuilding anything: sessions keep
// their ports (owned outside the window too), new sessions get ports of the new window only.
TEST(PortAllocatorAlloc, RangeChangeMovesTheWindowAndKeepsOwnership) {
    Ports pa(0, 1, 3);
    pa.add_address(kAddrA, 1024, 1087);  // 64 ports
    for (uint32_t p = 1024; p <= 1087; ++p) pa.acquire(kAddrA, PortSpace::Tcp, static_cast<uint16_t>(p));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    const AddressPorts* state = pa.pa().index()->find(kAddrA)->ports;

    pa.add_address(kAddrA, 1056, 1119);  // half of the old ports, 32 new ones
    EXPECT_EQ(pa.pa().index()->find(kAddrA)->ports, state) << "a range change keeps the state";
    EXPECT_EQ(pa.partition_size(kAddrA), 64u);
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, 1030));  // its session still has it
    std::set<uint16_t> got;
    for (int i = 0; i < 32; ++i) {
        const auto p = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken);
        ASSERT_TRUE(p.has_value()) << "allocation " << i;
        ASSERT_GE(*p, 1088);
        ASSERT_LE(*p, 1119);
        ASSERT_TRUE(got.insert(*p).second);
        pa.acquire(kAddrA, PortSpace::Tcp, *p);
    }
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), 96u);
    // A port outside the window that its session gives back is not handed out again...
    pa.release_user(kAddrA, PortSpace::Tcp, 1030);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), 95u);
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    // ...until the range holds it again.
    pa.add_address(kAddrA, 1024, 1087);
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::optional<uint16_t>(1030));
    // Draining, then forgetting the address: no ports, and the allocator no longer knows it.
    pa.set_draining(kAddrA);
    EXPECT_TRUE(pa.pa().draining(kAddrA));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken), std::nullopt);
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, 1100));
    pa.forget(kAddrA);
    EXPECT_FALSE(pa.has_address(kAddrA));
    EXPECT_TRUE(pa.pa().draining(kAddrA));  // unknown: gives no ports
}

// The state of one address: 8 KiB per protocol space across all workers, whatever W.
TEST(PortStateStore, StateIsOneBitPerPortAndSpace) {
    for (const uint16_t workers : kWorkerCounts) {
        std::size_t bits_bytes = 0;
        for (uint16_t w = 0; w < workers; ++w) {
            AddressPorts ap(w, workers);
            EXPECT_EQ(ap.part.count, Partition::of(0, 65535, w, workers).count);
            bits_bytes += std::size_t{ap.words} * 8 * kPortSpaceCount;
        }
        EXPECT_LE(bits_bytes, 3u * 8192 + 3u * 8 * workers) << workers << " workers";
        EXPECT_LE(PortStateStore::bytes_per_address(workers), 3u * 8192 + 3u * 8 * workers + 256u * workers);
    }
}

TEST(PortAllocatorAlloc, AddressNotAddedGivesNullopt) {
    Ports pa(0, 2, 1);
    EXPECT_FALSE(pa.has_address(kAddrA));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, never_taken), std::nullopt);
    pa.add_address(kAddrA, 1024, 65535);
    EXPECT_TRUE(pa.has_address(kAddrA));
    EXPECT_FALSE(pa.has_address(kAddrB));
    EXPECT_EQ(pa.allocate(kAddrB, PortSpace::Udp, no_pairs, never_taken), std::nullopt);
    EXPECT_EQ(pa.allocate(kAddrB, PortSpace::Icmp, no_pairs, never_taken), std::nullopt);
}

TEST(PortAllocatorAlloc, AddAddressRepeatedIsHarmless) {
    Ports pa(1, 4, 8);
    pa.add_address(kAddrA, 1024, 2047);
    const uint32_t k = pa.partition_size(kAddrA);
    ASSERT_EQ(k, 256u);
    const Partition part = Partition::of(1024, 2047, 1, 4);
    for (uint32_t i = 0; i < k; i += 2) pa.acquire(kAddrA, PortSpace::Tcp, part.port_at(i));
    pa.acquire(kAddrA, PortSpace::Icmp, part.port_at(1));
    pa.add_address(kAddrA, 1024, 2047);
    pa.add_address(kAddrA, 1024, 2047);
    EXPECT_EQ(pa.partition_size(kAddrA), k);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), k / 2);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Icmp), 1u);
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, part.port_at(0)));
    EXPECT_FALSE(pa.owned(kAddrA, PortSpace::Tcp, part.port_at(1)));
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Icmp, part.port_at(1)));
    // Still allocates only unused ports (the odd indexes) while there are any.
    for (uint32_t i = 0; i < k / 2; ++i) {
        const auto p = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken);
        ASSERT_TRUE(p.has_value());
        ASSERT_EQ(part.index_of(*p) % 2, 1u) << "port " << *p;
        pa.acquire(kAddrA, PortSpace::Tcp, *p);
    }
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    // Adding another address later does not disturb the first.
    pa.add_address(kAddrB, 1024, 65535);
    EXPECT_EQ(pa.partition_size(kAddrB), 16128u);
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), k);
    EXPECT_EQ(pa.ports_in_use(kAddrB, PortSpace::Tcp), 0u);
}

TEST(PortAllocatorAlloc, PortSpacesAndAddressesAreIndependent) {
    Ports pa(0, 2, 55);
    pa.add_address(kAddrA, 1024, 1151);  // 64 even ports
    pa.add_address(kAddrB, 1024, 1151);
    const Partition part = Partition::of(1024, 1151, 0, 2);
    ASSERT_EQ(part.count, 64u);
    // Fill TCP on A completely.
    for (uint32_t i = 0; i < part.count; ++i) pa.acquire(kAddrA, PortSpace::Tcp, part.port_at(i));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    // UDP and ICMP on A, and TCP on B, are untouched: unused ports, without asking taken().
    for (const PortSpace space : {PortSpace::Udp, PortSpace::Icmp}) {
        EXPECT_EQ(pa.ports_in_use(kAddrA, space), 0u);
        EXPECT_FALSE(pa.owned(kAddrA, space, part.port_at(0)));
        std::set<uint16_t> got;
        for (uint32_t i = 0; i < part.count; ++i) {
            const auto p = pa.allocate(kAddrA, space, no_pairs, always_taken);
            ASSERT_TRUE(p.has_value());
            ASSERT_TRUE(got.insert(*p).second);
            pa.acquire(kAddrA, space, *p);
        }
        EXPECT_EQ(pa.ports_in_use(kAddrA, space), 64u);
        EXPECT_EQ(pa.allocate(kAddrA, space, no_pairs, always_taken), std::nullopt);
    }
    EXPECT_EQ(pa.ports_in_use(kAddrB, PortSpace::Tcp), 0u);
    const auto pb = pa.allocate(kAddrB, PortSpace::Tcp, no_pairs, always_taken);
    ASSERT_TRUE(pb.has_value());
    EXPECT_TRUE(part.contains(*pb));
    // Releasing a UDP port does not free the TCP one.
    pa.release_user(kAddrA, PortSpace::Udp, part.port_at(5));
    EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, part.port_at(5)));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs, always_taken), std::nullopt);
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Udp, no_pairs, always_taken),
              std::optional<uint16_t>(part.port_at(5)));
    EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Icmp, no_pairs, always_taken), std::nullopt);
}

// Endpoint-dependent mapping in the allocator's terms: with three remotes, a partition of k
// ports carries 3k sessions, each (port, remote) pair once, and not one more.
TEST(PortAllocatorAlloc, SeveralRemotesShareEveryPortOncePerRemote) {
    const uint16_t workers = 3, w = 1;
    Ports pa(w, workers, 2024);
    pa.add_address(kAddrA, 1024, 1343);  // 320 ports, 107 for worker 1 (1024 % 3 == 1)
    const Partition part = Partition::of(1024, 1343, w, workers);
    const uint32_t k = pa.partition_size(kAddrA);
    ASSERT_EQ(k, part.count);
    ASSERT_EQ(k, 107u);
    std::vector<std::set<uint16_t>> held(3);  // per remote: the session table
    std::mt19937 rng(3);
    uint32_t sessions = 0;
    for (uint32_t i = 0; i < 3 * k; ++i) {
        // Remote with room left, chosen at random.
        uint32_t r = rng() % 3;
        while (held[r].size() == k) r = (r + 1) % 3;
        const auto p = pa.allocate(kAddrA, PortSpace::Tcp, no_pairs,
                                   [&](uint16_t port) { return held[r].count(port) != 0; });
        ASSERT_TRUE(p.has_value()) << "session " << i;
        ASSERT_TRUE(part.contains(*p));
        ASSERT_TRUE(held[r].insert(*p).second) << "pair (" << *p << ", remote " << r << ") twice";
        pa.acquire(kAddrA, PortSpace::Tcp, *p);
        ++sessions;
    }
    EXPECT_EQ(sessions, 3 * k);
    for (uint32_t i = 0; i < k; ++i) {
        EXPECT_EQ(pa.users(kAddrA, PortSpace::Tcp, part.port_at(i)), 3u);
        EXPECT_TRUE(pa.owned(kAddrA, PortSpace::Tcp, part.port_at(i)));
    }
    EXPECT_EQ(pa.ports_in_use(kAddrA, PortSpace::Tcp), k);
    EXPECT_EQ(pa.pa().sharers(kAddrA, PortSpace::Tcp), 2 * k);
    for (int r = 0; r < 3; ++r)
        EXPECT_EQ(pa.allocate(kAddrA, PortSpace::Tcp, no_pairs,
                              [&](uint16_t port) { return held[r].count(port) != 0; }),
                  std::nullopt)
            << "remote " << r;
}

}  // namespace
}  // namespace snatgw
