// natperf's searches (tools/natperf/binary_search.h) against fake trial functions: monotone
// thresholds are found to the precision, every trial is recorded, all-fail / all-pass and the
// bounds and the step limit behave.
#include <gtest/gtest.h>

#include <cmath>

#include "binary_search.h"

using natperf::capacity_search;
using natperf::rate_search;

TEST(NatperfBinarySearch, FindsMonotoneThresholdWithinPrecision) {
    for (double threshold : {1000.0, 1234.5, 55555.0, 99999.0, 250000.0}) {
        int calls = 0;
        const auto r = rate_search(1000, 1000000, 100, 64, [&](double rate) {
            ++calls;
            return rate <= threshold;
        });
        ASSERT_TRUE(r.best.has_value()) << threshold;
        EXPECT_LE(*r.best, threshold);
        EXPECT_GT(*r.best, threshold - 100.0 - 1e-9);
        EXPECT_EQ(static_cast<int>(r.steps.size()), calls);
        EXPECT_FALSE(r.step_limit_hit);
        // Recorded outcomes agree with the threshold.
        for (const auto& s : r.steps) EXPECT_EQ(s.pass, s.value <= threshold);
        // First trial at the top, second at the bottom (RFC 2544 search bounds).
        EXPECT_EQ(r.steps[0].value, 1000000);
        EXPECT_EQ(r.steps[1].value, 1000);
    }
}

TEST(NatperfBinarySearch, AllPassStopsAtTheTop) {
    const auto r = rate_search(10, 5000, 1, 20, [](double) { return true; });
    ASSERT_TRUE(r.best);
    EXPECT_EQ(*r.best, 5000);
    EXPECT_EQ(r.steps.size(), 1u);
}

TEST(NatperfBinarySearch, AllFailHasNoFigure) {
    const auto r = rate_search(10, 5000, 1, 20, [](double) { return false; });
    EXPECT_FALSE(r.best);
    ASSERT_EQ(r.steps.size(), 2u);
    EXPECT_EQ(r.steps[1].value, 10);
}

TEST(NatperfBinarySearch, StepLimitBoundsTheSearch) {
    const auto r = rate_search(1, 1e9, 1e-3, 6, [](double v) { return v < 123456; });
    EXPECT_EQ(r.steps.size(), 6u);
    EXPECT_TRUE(r.step_limit_hit);
    ASSERT_TRUE(r.best);
    EXPECT_LT(*r.best, 123456);
}

TEST(NatperfBinarySearch, BadBoundsThrow) {
    EXPECT_THROW(rate_search(0, 10, 1, 5, [](double) { return true; }), std::invalid_argument);
    EXPECT_THROW(rate_search(20, 10, 1, 5, [](double) { return true; }), std::invalid_argument);
    EXPECT_THROW(capacity_search(0, 10, 1, 5, [](double) { return true; }), std::invalid_argument);
}

TEST(NatperfCapacitySearch, ExponentialThenBinaryFindsExactCapacity) {
    for (uint64_t cap : {1ull, 7ull, 1000ull, 1024ull, 1025ull, 65535ull, 100000ull}) {
        const auto r = capacity_search(1, 1u << 20, 1, 64, [&](double n) { return n <= static_cast<double>(cap); });
        ASSERT_TRUE(r.best) << cap;
        EXPECT_EQ(static_cast<uint64_t>(*r.best), cap);
        EXPECT_FALSE(r.step_limit_hit);
        // Doubling first: the first trials are 1, 2, 4, ...
        EXPECT_EQ(r.steps[0].value, 1);
        if (r.steps.size() > 1 && cap > 1) {
            EXPECT_EQ(r.steps[1].value, 2);
        }
    }
}

TEST(NatperfCapacitySearch, StartAboveCapacitySearchesDown) {
    const auto r = capacity_search(4096, 1u << 20, 1, 64, [](double n) { return n <= 1500; });
    ASSERT_TRUE(r.best);
    EXPECT_EQ(*r.best, 1500);
    EXPECT_FALSE(r.steps[0].pass);
}

TEST(NatperfCapacitySearch, MaxIsTriedAndReported) {
    const auto r = capacity_search(1000, 5000, 1, 64, [](double) { return true; });
    ASSERT_TRUE(r.best);
    EXPECT_EQ(*r.best, 5000);
    EXPECT_EQ(r.steps.back().value, 5000);  // 1000, 2000, 4000, 5000
    EXPECT_EQ(r.steps.size(), 4u);
}

TEST(NatperfCapacitySearch, AllFailAndRelativePrecision) {
    const auto none = capacity_search(1, 100, 1, 64, [](double) { return false; });
    EXPECT_FALSE(none.best);
    // precision 0: within 1% of the figure.
    const auto r = capacity_search(1000, 1u << 22, 0, 64, [](double n) { return n <= 777777; });
    ASSERT_TRUE(r.best);
    EXPECT_LE(*r.best, 777777);
    EXPECT_GE(*r.best, 777777 * 0.99);
}
