// The searches behind the figures, independent of what a trial does (pure C++, unit-tested in
// tests/unit/natperf_binary_search_test.cpp):
//  - rate_search: RFC 2544 section 26.1 binary search for the highest value in [lo, hi] whose
//    trial passes, to a precision (throughput, maximum connection establishment rate);
//  - capacity_search: exponential (doubling from a start) then binary search for the largest
//    count whose trial passes, up to a maximum (connection tracking table capacity).
// Both record every trial in order and are bounded by a maximum number of trials.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace natperf {

struct SearchStep {
    double value = 0;  // the rate or count tried
    bool pass = false;
};

struct SearchResult {
    std::optional<double> best;     // highest passing value; empty when none passed
    std::vector<SearchStep> steps;  // every trial, in the order run
    bool step_limit_hit = false;    // stopped by max_steps before reaching the precision
};

// Trial function: true when the value passes. Exceptions propagate (the run aborts).
using TrialFn = std::function<bool(double)>;

// RFC 2544 binary search. Tries hi first (a pass ends the search), then lo (a failure there
// ends it with no figure), then halves [pass, fail] until fail - pass <= precision.
// Requires 0 < lo <= hi, precision > 0, max_steps >= 1.
SearchResult rate_search(double lo, double hi, double precision, int max_steps, const TrialFn& trial);

// Largest n in [start, max] that passes, assuming pass(n) implies pass(m) for m < n: doubles
// n from start while it passes (the last try is max itself), then binary search between the
// last pass and the first failure until they are within precision (0: 1% of the last pass,
// at least 1). Integral values.
SearchResult capacity_search(uint64_t start, uint64_t max, uint64_t precision, int max_steps,
                             const TrialFn& trial);

}  // namespace natperf
