// The RFC 9693 tests on top of the engine: the preliminary phase (load the DUT's state over
// the tuples and learn their translations), validation (one reverse frame per learned tuple),
// and the six tests - throughput, frame loss, latency, maximum connection establishment rate,
// connection tear-down rate, connection tracking table capacity. Each test returns its JSON
// record (parameters, every trial, the figure and a one-line summary). Control path.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "options.h"
#include "traffic_engine.h"

namespace natperf {

// A test that cannot produce its figure (phase 1 failed, the flush command failed...).
struct TestCannotRun : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Runner {
public:
    Runner(const Options& options, Engine& engine, LearnedTuples& learned);

    // Runs one test; its record has "error" when it could not run (then ok() is false).
    nlohmann::json run(TestKind test);
    bool ok() const { return ok_; }

    // The parameters block of the report.
    nlohmann::json parameters() const;

private:
    struct Load {
        TrialStats phase1;
        bool pass = false;
    };
    // Phase 1 over tuples [0, n) of `space` at `rate`: forgets what was learned first.
    Load load(const TupleSpace& space, uint64_t n, double rate);
    // One Validation frame per tuple of [0, n) over what was learned, at the phase-1 rate.
    TrialStats validate(const TupleSpace& space, uint64_t n);
    // Phase 1 over the whole space unless the DUT is known to hold it; records the trial.
    void ensure_loaded(nlohmann::json& trials);
    double flush();        // runs --flush-command; throws TestCannotRun when it fails
    nlohmann::json trial_record(const std::string& step, double value, const TrialStats& s, bool pass,
                                bool forward, bool reverse);
    void progress(const nlohmann::json& trial) const;

    // Each fills rec["trials"] as it goes, then rec["result"] and rec["summary"]; throws
    // TestCannotRun (the trials so far stay in rec).
    void throughput(nlohmann::json& rec);
    void frame_loss_or_latency(nlohmann::json& rec, bool latency);
    void max_conn_rate(nlohmann::json& rec);
    void teardown_rate(nlohmann::json& rec);
    void capacity(nlohmann::json& rec);

    const Options& o_;
    Engine& engine_;
    LearnedTuples& learned_;
    TupleSpace space_;
    bool loaded_ = false;  // the DUT holds the state of phase 1 over space_ (all tuples)
    bool ok_ = true;
    uint64_t stream_ = 0;  // seed stream per trial
    int trial_no_ = 0;
    std::string current_test_;
};

}  // namespace natperf
