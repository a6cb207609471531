// The rate and capacity searches; see binary_search.h.
#include "binary_search.h"

#include <algorithm>
#include <stdexcept>

namespace natperf {

SearchResult rate_search(double lo, double hi, double precision, int max_steps, const TrialFn& trial) {
    if (!(lo > 0) || hi < lo || !(precision > 0) || max_steps < 1)
        throw std::invalid_argument("rate_search: need 0 < lo <= hi, precision > 0, max_steps >= 1");
    SearchResult r;
    auto run = [&](double v) {
        const bool pass = trial(v);
        r.steps.push_back({v, pass});
        return pass;
    };
    if (run(hi)) {
        r.best = hi;
        return r;
    }
    if (hi == lo || static_cast<int>(r.steps.size()) >= max_steps) {
        r.step_limit_hit = hi != lo;
        return r;
    }
    if (!run(lo)) return r;
    double pass = lo, fail = hi;
    while (fail - pass > precision) {
        if (static_cast<int>(r.steps.size()) >= max_steps) {
            r.step_limit_hit = true;
            break;
        }
        const double mid = pass + (fail - pass) / 2;
        (run(mid) ? pass : fail) = mid;
    }
    r.best = pass;
    return r;
}

SearchResult capacity_search(uint64_t start, uint64_t max, uint64_t precision, int max_steps,
                             const TrialFn& trial) {
    if (start < 1 || max < start || max_steps < 1)
        throw std::invalid_argument("capacity_search: need 1 <= start <= max, max_steps >= 1");
    SearchResult r;
    auto limit = [&] { return static_cast<int>(r.steps.size()) >= max_steps; };
    auto run = [&](uint64_t v) {
        const bool pass = trial(static_cast<double>(v));
        r.steps.push_back({static_cast<double>(v), pass});
        return pass;
    };
    // Exponential phase.
    uint64_t pass = 0, fail = 0;
    uint64_t n = start;
    while (true) {
        if (limit()) {
            r.step_limit_hit = true;
            break;
        }
        if (!run(n)) {
            fail = n;
            break;
        }
        pass = n;
        if (n == max) break;
        n = (n > max / 2) ? max : n * 2;
    }
    // Binary phase between the last pass (0: none yet) and the first failure.
    if (fail != 0 && !r.step_limit_hit) {
        // precision 0: 1% of the size found so far (at least 1).
        auto prec = [&] { return precision ? precision : std::max<uint64_t>(1, pass / 100); };
        while (fail - pass > prec()) {
            if (limit()) {
                r.step_limit_hit = true;
                break;
            }
            const uint64_t mid = pass + (fail - pass) / 2;
            if (mid == 0) break;
            (run(mid) ? pass : fail) = mid;
        }
    }
    if (pass != 0) r.best = static_cast<double>(pass);
    return r;
}

}  // namespace natperf
