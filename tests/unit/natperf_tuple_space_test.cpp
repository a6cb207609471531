// natperf's tuple space (tools/natperf/tuple_space.h): the phase-1 permutation covers every
// source x destination port combination exactly once, depends on the seed (deterministically),
// stays in the ranges, and needs no per-tuple memory; phase-2 draws are uniform enough.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "tuple_space.h"

using natperf::Permutation;
using natperf::PortRange;
using natperf::Rng;
using natperf::TupleSpace;

namespace {

std::vector<uint64_t> order(const Permutation& p) {
    std::vector<uint64_t> v;
    for (uint64_t i = 0; i < p.size(); ++i) v.push_back(p.at(i));
    return v;
}

}  // namespace

TEST(NatperfTupleSpace, EveryCombinationExactlyOnce) {
    const TupleSpace s(PortRange{10000, 10099}, PortRange{80, 89}, 42);
    ASSERT_EQ(s.size(), 1000u);
    std::set<std::pair<uint16_t, uint16_t>> seen;
    for (uint64_t step = 0; step < s.size(); ++step) {
        const uint64_t idx = s.phase1_index(step);
        ASSERT_LT(idx, s.size());
        const natperf::Tuple t = s.tuple(idx);
        EXPECT_GE(t.src_port, 10000);
        EXPECT_LE(t.src_port, 10099);
        EXPECT_GE(t.dst_port, 80);
        EXPECT_LE(t.dst_port, 89);
        EXPECT_TRUE(seen.insert({t.src_port, t.dst_port}).second) << "tuple repeated at step " << step;
        EXPECT_EQ(s.index_of(t.src_port, t.dst_port), static_cast<int64_t>(idx));
    }
    EXPECT_EQ(seen.size(), 1000u);
}

TEST(NatperfTupleSpace, PermutationOfOddSizesIsBijective) {
    for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 17ull, 255ull, 256ull, 257ull, 4097ull, 65535ull}) {
        std::vector<uint64_t> v = order(Permutation(n, 7));
        std::sort(v.begin(), v.end());
        for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(v[i], i) << "n=" << n;
    }
}

TEST(NatperfTupleSpace, DeterministicPerSeedAndSeedsDiffer) {
    const auto a = order(Permutation(5000, 1));
    const auto b = order(Permutation(5000, 1));
    const auto c = order(Permutation(5000, 2));
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    // Not the identity, nor increasing order (RFC 4814: pseudorandom, not sequential).
    std::vector<uint64_t> identity(5000);
    for (uint64_t i = 0; i < identity.size(); ++i) identity[i] = i;
    EXPECT_NE(a, identity);
    int ascending = 0;
    for (std::size_t i = 1; i < a.size(); ++i) ascending += a[i] > a[i - 1];
    EXPECT_GT(ascending, 2000);
    EXPECT_LT(ascending, 3000);
}

TEST(NatperfTupleSpace, MillionsWithoutPerTupleMemory) {
    // 4M tuples: the permutation is O(1) memory; check a bitmap of every index once.
    const TupleSpace s(PortRange{1024, 65535}, PortRange{1, 64}, 99);
    ASSERT_EQ(s.size(), 64512ull * 64);
    EXPECT_LE(sizeof(Permutation), 64u);
    std::vector<bool> seen(s.size());
    for (uint64_t step = 0; step < s.size(); ++step) {
        const uint64_t idx = s.phase1_index(step);
        ASSERT_LT(idx, s.size());
        ASSERT_FALSE(seen[idx]);
        seen[idx] = true;
    }
}

TEST(NatperfTupleSpace, SinglePortRangesAndBounds) {
    const TupleSpace s(PortRange{65535, 65535}, PortRange{1, 1}, 3);
    EXPECT_EQ(s.size(), 1u);
    EXPECT_EQ(s.phase1_index(0), 0u);
    EXPECT_EQ(s.tuple(0).src_port, 65535);
    EXPECT_EQ(s.tuple(0).dst_port, 1);
    EXPECT_EQ(s.index_of(65534, 1), -1);
    EXPECT_EQ(s.index_of(65535, 2), -1);
}

TEST(NatperfTupleSpace, RandomDrawsCoverTheRangeEvenly) {
    Rng rng(natperf::mix_seed(5, 1));
    std::vector<int> hits(100);
    for (int i = 0; i < 100000; ++i) {
        const uint64_t v = rng.below(100);
        ASSERT_LT(v, 100u);
        ++hits[v];
    }
    for (int h : hits) {
        EXPECT_GT(h, 800);
        EXPECT_LT(h, 1200);
    }
    Rng a(1), b(1), c(2);
    EXPECT_EQ(a.next(), b.next());
    EXPECT_NE(Rng(1).next(), c.next());
}
