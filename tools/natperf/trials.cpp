// The RFC 9693 tests; see trials.h.
#include "trials.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "binary_search.h"
#include "flush_command.h"
#include "report.h"

namespace natperf {

using nlohmann::json;

namespace {

std::string range_text(PortRange r) { return std::to_string(r.lo) + "-" + std::to_string(r.hi); }

bool active(Direction d, bool forward) {
    return d == Direction::Bidirectional || (d == Direction::Forward) == forward;
}

// Phase-1 and validation transmissions get their nominal time plus this much slack before
// the TX deadline (a tester or DUT that cannot keep the pace fails the trial, bounded).
double tx_budget(uint64_t frames, double rate) {
    return static_cast<double>(frames) / rate * 1.1 + 0.2;
}

std::string fmt_rate(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

Runner::Runner(const Options& options, Engine& engine, LearnedTuples& learned)
    : o_(options), engine_(engine), learned_(learned), space_(options.src, options.dst, options.seed) {}

json Runner::parameters() const {
    return {
        {"rfc", "9693"},
        {"initiator_port", o_.initiator_port},
        {"responder_port", o_.responder_port},
        {"initiator_ip", format_ipv4(o_.initiator_ip)},
        {"initiator_gateway", format_ipv4(o_.initiator_gateway)},
        {"responder_ip", format_ipv4(o_.responder_ip)},
        {"responder_gateway", o_.responder_gateway ? json(format_ipv4(o_.responder_gateway)) : json()},
        {"proto", o_.proto == Proto::Udp ? "udp" : "tcp"},
        {"src_ports", range_text(o_.src)},
        {"dst_ports", range_text(o_.dst)},
        {"tuples", o_.tuples()},
        {"frame_size", o_.proto == Proto::Udp ? o_.frame_size : 64},
        {"direction", direction_name(o_.direction)},
        {"rate_fps", o_.rate ? json(o_.rate) : json()},
        {"phase1_rate_fps", o_.phase1_rate},
        {"rate_min_fps", o_.rate_min},
        {"rate_max_fps", o_.rate_max},
        {"precision_fps", o_.precision},
        {"duration_s", o_.duration},
        {"timeout_ms", o_.timeout_ms},
        {"flush_command", o_.flush_command},
        {"fresh_ports", o_.fresh_ports},
        {"capacity_start", o_.capacity_start},
        {"capacity_max", o_.capacity_max},
        {"capacity_precision", o_.capacity_precision},
        {"max_steps", o_.max_steps},
        {"seed", o_.seed},
    };
}

json Runner::trial_record(const std::string& step, double value, const TrialStats& s, bool pass,
                          bool forward, bool reverse) {
    json t = {{"trial", ++trial_no_}, {"step", step}, {"value", value}, {"pass", pass},
              {"elapsed_s", s.elapsed_s}};
    if (forward) t["forward"] = direction_json(s.forward, engine_.tsc_hz());
    if (reverse) t["reverse"] = direction_json(s.reverse, engine_.tsc_hz());
    // Whether the trial's rate was really offered (DirectionStats::on_pace). Forward traffic
    // always runs at the trial's value; reverse traffic does in the phase-2 tests only (in
    // the connection tests it is the validation, at --phase1-rate).
    const bool phase2 = current_test_ == "throughput" || current_test_ == "frame-loss" ||
                        current_test_ == "latency";
    const bool value_is_rate = current_test_ != "capacity" || step == "phase1";  // else a size
    if (forward && value > 0 && value_is_rate) t["forward"]["on_pace"] = s.forward.on_pace(value);
    if (reverse && value > 0 && phase2) t["reverse"]["on_pace"] = s.reverse.on_pace(value);
    return t;
}

void Runner::progress(const json& t) const {
    // Every trial is reported through here: the place to stop after SIGINT/SIGTERM.
    if (stop_requested()) throw TestCannotRun("interrupted (SIGINT/SIGTERM)");
    std::fprintf(stderr, "natperf: %s trial %d %s %.0f", current_test_.c_str(), t.value("trial", 0),
                 t.value("step", "").c_str(), t.value("value", 0.0));
    for (const char* dir : {"forward", "reverse"})
        if (t.contains(dir))
            std::fprintf(stderr, " %s %s/%s", dir, std::to_string(t[dir]["received"].get<uint64_t>()).c_str(),
                         std::to_string(t[dir]["sent"].get<uint64_t>()).c_str());
    std::fprintf(stderr, " %s\n", t.value("pass", false) ? "pass" : "FAIL");
}

Runner::Load Runner::load(const TupleSpace& space, uint64_t n, double rate) {
    learned_.clear();
    loaded_ = false;
    TrialSpec s;
    s.space = &space;
    s.tuples = n;
    s.initiator = TxPlan{true, Kind::Phase1, TxOrder::Permuted, rate, n, false};
    s.tx_seconds = tx_budget(n, rate);
    s.timeout_s = o_.timeout_ms / 1000.0;
    s.learn = true;
    s.seed_stream = ++stream_;
    Load l;
    l.phase1 = engine_.run(s);
    l.pass = l.phase1.forward.sent == n && learned_.count() == n;
    return l;
}

TrialStats Runner::validate(const TupleSpace& space, uint64_t n) {
    TrialSpec s;
    s.space = &space;
    s.tuples = n;
    s.responder = TxPlan{true, Kind::Validation, TxOrder::Sequential, o_.phase1_rate, n, false};
    s.tx_seconds = tx_budget(n, o_.phase1_rate);
    s.timeout_s = o_.timeout_ms / 1000.0;
    s.seed_stream = ++stream_;
    return engine_.run(s);
}

double Runner::flush() {
    const FlushResult r = run_flush(o_.flush_command, engine_);
    if (r.exit_code != 0)
        throw TestCannotRun("--flush-command exited with " + std::to_string(r.exit_code) + ": " + o_.flush_command);
    loaded_ = false;
    return r.seconds;
}

void Runner::ensure_loaded(json& trials) {
    if (loaded_) return;
    const Load l = load(space_, space_.size(), o_.phase1_rate);
    json t = trial_record("phase1", o_.phase1_rate, l.phase1, l.pass, true, false);
    t["learned"] = learned_.count();
    t["public_addresses"] = learned_.distinct_public_ips();
    progress(t);
    trials.push_back(t);
    if (!l.pass)
        throw TestCannotRun("phase 1 failed: " + std::to_string(learned_.count()) + " of " +
                            std::to_string(space_.size()) + " tuples arrived at " +
                            fmt_rate(o_.phase1_rate) + " frames/s (sent " +
                            std::to_string(l.phase1.forward.sent) + ")");
    loaded_ = true;
}

void Runner::throughput(json& rec) {
    ensure_loaded(rec["trials"]);
    const bool fwd = active(o_.direction, true), rev = active(o_.direction, false);
    const TrialFn trial = [&](double rate) {
        const auto frames = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(rate * o_.duration)));
        TrialSpec s;
        s.space = &space_;
        s.tuples = space_.size();
        if (fwd) s.initiator = TxPlan{true, Kind::Forward, TxOrder::Random, rate, frames, false};
        if (rev) s.responder = TxPlan{true, Kind::Reverse, TxOrder::Random, rate, frames, false};
        s.tx_seconds = o_.duration * 1.05 + 0.1;
        s.timeout_s = o_.timeout_ms / 1000.0;
        s.seed_stream = ++stream_;
        const TrialStats st = engine_.run(s);
        const bool pass = (!fwd || (st.forward.lossless() && st.forward.on_pace(rate))) &&
                          (!rev || (st.reverse.lossless() && st.reverse.on_pace(rate)));
        json t = trial_record("search", rate, st, pass, fwd, rev);
        progress(t);
        rec["trials"].push_back(t);
        return pass;
    };
    const SearchResult r = rate_search(o_.rate_min, o_.rate_max, o_.precision, o_.max_steps, trial);
    const double best = r.best.value_or(0);
    const uint32_t size = o_.frame_size;
    rec["result"] = {
        {"throughput_fps", best},
        {"frame_size", size},
        {"per_direction", o_.direction == Direction::Bidirectional},
        {"l2_bits_per_second", best * size * 8},
        {"no_passing_rate", !r.best.has_value()},
        {"step_limit_hit", r.step_limit_hit},
    };
    rec["summary"] = "throughput " + fmt_rate(best) + " frames/s" +
                     (o_.direction == Direction::Bidirectional ? " per direction" : "") + " at " +
                     std::to_string(size) + "-byte frames (" + direction_name(o_.direction) + ", " +
                     std::to_string(space_.size()) + " tuples" +
                     (r.best ? "" : "; no rate passed, not even --rate-min") + ")";
}

void Runner::frame_loss_or_latency(json& rec, bool latency) {
    ensure_loaded(rec["trials"]);
    const bool fwd = active(o_.direction, true), rev = active(o_.direction, false);
    const auto frames = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(o_.rate * o_.duration)));
    TrialSpec s;
    s.space = &space_;
    s.tuples = space_.size();
    if (fwd) s.initiator = TxPlan{true, Kind::Forward, TxOrder::Random, o_.rate, frames, latency};
    if (rev) s.responder = TxPlan{true, Kind::Reverse, TxOrder::Random, o_.rate, frames, latency};
    s.tx_seconds = o_.duration * 1.05 + 0.1;
    s.timeout_s = o_.timeout_ms / 1000.0;
    s.seed_stream = ++stream_;
    const TrialStats st = engine_.run(s);
    const bool pass = (!fwd || (st.forward.lossless() && st.forward.on_pace(o_.rate))) &&
                      (!rev || (st.reverse.lossless() && st.reverse.on_pace(o_.rate)));
    json t = trial_record("trial", o_.rate, st, pass, fwd, rev);
    progress(t);
    rec["trials"].push_back(t);
    json result = {{"rate_fps", o_.rate}, {"frame_size", o_.frame_size}};
    std::string summary;
    for (const char* dir : {"forward", "reverse"}) {
        if (!t.contains(dir)) continue;
        const json& d = t[dir];
        char buf[200];
        if (latency) {
            const json lat = d.value("latency", json::object());
            result[dir] = lat;
            std::snprintf(buf, sizeof buf, "%s%s: typical latency %.1f us, worst-case %.1f us (%s samples)",
                          summary.empty() ? "" : "; ", dir, lat.value("typical_latency_us", 0.0),
                          lat.value("worst_case_latency_us", 0.0),
                          std::to_string(lat.value("samples", uint64_t{0})).c_str());
        } else {
            result[dir] = {{"frame_loss_percent", d["loss_percent"]}, {"sent", d["sent"]}, {"received", d["received"]}};
            std::snprintf(buf, sizeof buf, "%s%s: frame loss rate %.4f %%", summary.empty() ? "" : "; ", dir,
                          d["loss_percent"].get<double>());
        }
        summary += buf;
    }
    rec["result"] = result;
    rec["summary"] = summary + " at " + fmt_rate(o_.rate) + " frames/s, " + std::to_string(o_.frame_size) + "-byte frames";
}

void Runner::max_conn_rate(json& rec) {
    const uint64_t n = space_.size();
    uint32_t shift = 0;
    const TrialFn trial = [&](double rate) {
        PortRange src = o_.src;
        if (o_.fresh_ports) {
            ++shift;
            const uint64_t lo = uint64_t{o_.src.lo} + uint64_t{shift} * o_.src.size();
            if (lo + o_.src.size() - 1 > 65535)
                throw TestCannotRun("--fresh-ports: no fresh source port range left for trial " +
                                    std::to_string(shift) + " (narrow --src-ports or use --flush-command)");
            src = PortRange{static_cast<uint16_t>(lo), static_cast<uint16_t>(lo + o_.src.size() - 1)};
        } else {
            flush();
        }
        const TupleSpace space(src, o_.dst, o_.seed);
        const Load l = load(space, n, rate);
        TrialStats st = l.phase1;
        // The rate searched for is the rate of new connections: phase 1 must have offered it.
        bool pass = l.pass && l.phase1.forward.on_pace(rate);
        if (pass) {
            st.reverse = validate(space, n).reverse;
            pass = st.reverse.received == n;
        }
        json t = trial_record("search", rate, st, pass, true, l.pass);
        t["learned"] = learned_.count();
        if (o_.fresh_ports) t["src_ports"] = range_text(src);
        progress(t);
        rec["trials"].push_back(t);
        return pass;
    };
    const SearchResult r = rate_search(o_.rate_min, o_.rate_max, o_.precision, o_.max_steps, trial);
    loaded_ = false;
    rec["result"] = {{"max_connection_rate_cps", r.best ? json(*r.best) : json()},
                     {"connections_per_trial", n},
                     {"step_limit_hit", r.step_limit_hit}};
    if (!r.best)
        throw TestCannotRun("phase 1 (with validation) failed even at --rate-min " + fmt_rate(o_.rate_min));
    rec["summary"] = "maximum connection establishment rate " + fmt_rate(*r.best) + " connections/s (" +
                     std::to_string(n) + " connections per trial, validated in reverse)";
}

void Runner::teardown_rate(json& rec) {
    const uint64_t n = space_.size();
    // T_N needs a phase 1 each, T_0 is cheap: more samples of T_0 steady the baseline, which
    // is mostly the flush command's own start-up (a process, a socket round trip).
    constexpr int kRepeats = 3, kEmptyRepeats = 5;
    auto timing = [&](const std::string& step, double seconds) {
        json t = {{"trial", ++trial_no_}, {"step", step}, {"value", seconds * 1e6}, {"pass", true},
                  {"seconds", seconds}};
        std::fprintf(stderr, "natperf: %s trial %d %s %.0f us\n", current_test_.c_str(), trial_no_,
                     step.c_str(), seconds * 1e6);
        rec["trials"].push_back(t);
    };
    flush();  // start empty
    std::vector<double> empty, loaded;
    for (int i = 0; i < kEmptyRepeats; ++i) {
        empty.push_back(flush());
        timing("flush0", empty.back());
    }
    bool verified = true;
    for (int i = 0; i < kRepeats; ++i) {
        const Load l = load(space_, n, o_.phase1_rate);
        json t = trial_record("phase1", o_.phase1_rate, l.phase1, l.pass, true, false);
        progress(t);
        rec["trials"].push_back(t);
        if (!l.pass) throw TestCannotRun("phase 1 failed: " + std::to_string(learned_.count()) + " of " + std::to_string(n) + " tuples arrived");
        loaded.push_back(flush());
        timing("flushN", loaded.back());
        if (i == 0) {
            // The state must be gone when the command returns: no reply crosses any more.
            const TrialStats v = validate(space_, n);
            json vt = trial_record("verify", 0, v, v.reverse.received == 0, false, true);
            progress(vt);
            rec["trials"].push_back(vt);
            verified = v.reverse.received == 0;
        }
    }
    const double t0 = median(empty), tn = median(loaded);
    json result = {{"connections", n}, {"t0_seconds", t0}, {"tn_seconds", tn}, {"state_gone_after_flush", verified}};
    if (tn > t0) {
        const double rate = static_cast<double>(n) / (tn - t0);
        result["teardown_rate_cps"] = rate;
        rec["summary"] = "connection tear-down rate " + fmt_rate(rate) + " connections/s (" + std::to_string(n) +
                         " connections; T_N " + fmt_rate(tn * 1e6) + " us, T_0 " + fmt_rate(t0 * 1e6) + " us)";
    } else {
        result["teardown_rate_cps"] = nullptr;
        rec["summary"] = "connection tear-down rate not measurable: T_N " + fmt_rate(tn * 1e6) +
                         " us <= T_0 " + fmt_rate(t0 * 1e6) + " us (use more tuples)";
    }
    rec["result"] = result;
}

void Runner::capacity(json& rec) {
    const TrialFn trial = [&](double value) {
        const auto n = static_cast<uint64_t>(value);
        flush();
        const Load l = load(space_, n, o_.phase1_rate);
        TrialStats st = l.phase1;
        bool pass = l.pass;
        if (pass) {
            st.reverse = validate(space_, n).reverse;
            pass = st.reverse.received == n;
        }
        json t = trial_record("search", value, st, pass, true, l.pass);
        t["learned"] = learned_.count();
        progress(t);
        rec["trials"].push_back(t);
        return pass;
    };
    const SearchResult r = capacity_search(o_.capacity_start, o_.capacity_max, o_.capacity_precision,
                                           o_.max_steps, trial);
    loaded_ = false;
    const bool at_max = r.best && static_cast<uint64_t>(*r.best) == o_.capacity_max;
    rec["result"] = {{"capacity_connections", r.best ? json(static_cast<uint64_t>(*r.best)) : json()},
                     {"reached_capacity_max", at_max},
                     {"step_limit_hit", r.step_limit_hit}};
    if (!r.best)
        throw TestCannotRun("no table size passed, not even 1 connection");
    rec["summary"] = "connection tracking table capacity " + std::to_string(static_cast<uint64_t>(*r.best)) +
                     " connections" + (at_max ? " (at least: --capacity-max reached)" : "");
}

json Runner::run(TestKind test) {
    current_test_ = test_name(test);
    trial_no_ = 0;
    json rec = {{"test", current_test_}, {"trials", json::array()}};
    if (test == TestKind::Throughput || test == TestKind::FrameLoss || test == TestKind::Latency)
        rec["direction"] = direction_name(o_.direction);
    try {
        switch (test) {
        case TestKind::Throughput: throughput(rec); break;
        case TestKind::FrameLoss: frame_loss_or_latency(rec, false); break;
        case TestKind::Latency: frame_loss_or_latency(rec, true); break;
        case TestKind::MaxConnRate: max_conn_rate(rec); break;
        case TestKind::TeardownRate: teardown_rate(rec); break;
        case TestKind::Capacity: capacity(rec); break;
        }
    } catch (const TestCannotRun& e) {
        rec["error"] = e.what();
        ok_ = false;
        std::fprintf(stderr, "natperf: %s could not run: %s\n", current_test_.c_str(), e.what());
    }
    return rec;
}

}  // namespace natperf
