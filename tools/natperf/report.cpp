// JSON records and human tables; see report.h.
#include "report.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace natperf {

using nlohmann::json;

double percentile_us(const std::vector<uint64_t>& sorted, double pct, double hz) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(pct / 100.0 * static_cast<double>(sorted.size())));
    if (rank == 0) rank = 1;
    if (rank > sorted.size()) rank = sorted.size();
    return static_cast<double>(sorted[rank - 1]) * 1e6 / hz;
}

json direction_json(const DirectionStats& d, double hz) {
    const uint64_t lost = d.sent > d.received ? d.sent - d.received : 0;
    json j = {
        {"planned", d.planned},
        {"sent", d.sent},
        {"received", d.received},
        {"lost", lost},
        {"loss_percent", d.sent ? 100.0 * static_cast<double>(lost) / static_cast<double>(d.sent) : 0.0},
        {"duplicates", d.duplicates},
        {"tx_short", d.tx_short()},
        {"tx_seconds", d.tx_seconds},
    };
    if (d.tx_seconds > 0 && d.sent > 1)
        j["achieved_rate_fps"] = static_cast<double>(d.sent - 1) / d.tx_seconds;
    if (!d.latency_cycles.empty()) {
        j["latency"] = {
            {"typical_latency_us", percentile_us(d.latency_cycles, 50, hz)},
            {"worst_case_latency_us", percentile_us(d.latency_cycles, 99.9, hz)},
            {"min_us", percentile_us(d.latency_cycles, 0, hz)},
            {"max_us", percentile_us(d.latency_cycles, 100, hz)},
            {"samples", d.latency_cycles.size()},
        };
    }
    return j;
}

namespace {

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string num(const json& v) {
    if (v.is_null()) return "-";
    if (v.is_number_integer() || v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number()) return fmt("%.0f", v.get<double>());
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    return v.get<std::string>();
}

void trial_table(std::ostringstream& o, const json& test) {
    if (!test.contains("trials") || test["trials"].empty()) return;
    char line[256];
    std::snprintf(line, sizeof line, "  %-5s %-8s %12s %9s %11s %11s %9s %8s %12s %s\n", "trial", "step",
                  "value", "dir", "sent", "received", "lost", "loss%", "sent/s", "result");
    o << line;
    for (const json& t : test["trials"]) {
        bool first = true;
        for (const char* dir : {"forward", "reverse"}) {
            if (!t.contains(dir)) continue;
            const json& d = t[dir];
            // "(slow)": the rate was not offered (every frame arrived, but late or not sent).
            const bool slow = d.contains("on_pace") && !d["on_pace"].get<bool>();
            const std::string verdict = first ? (t.value("pass", false) ? "pass" : "FAIL") : "";
            std::snprintf(line, sizeof line, "  %-5s %-8s %12s %9s %11s %11s %9s %8s %12s %s%s\n",
                          first ? std::to_string(t.value("trial", 0)).c_str() : "",
                          first ? t.value("step", "").c_str() : "",
                          first ? num(t.value("value", json())).c_str() : "", dir,
                          num(d["sent"]).c_str(), num(d["received"]).c_str(), num(d["lost"]).c_str(),
                          fmt("%.4f", d["loss_percent"].get<double>()).c_str(),
                          num(d.value("achieved_rate_fps", json())).c_str(), verdict.c_str(),
                          slow ? " (slow)" : "");
            o << line;
            first = false;
        }
        if (first) {  // a trial without traffic records (a flush timing)
            std::snprintf(line, sizeof line, "  %-5s %-8s %12s\n", std::to_string(t.value("trial", 0)).c_str(),
                          t.value("step", "").c_str(), num(t.value("value", json())).c_str());
            o << line;
        }
    }
}

}  // namespace

std::string human_report(const json& r) {
    std::ostringstream o;
    const json& p = r["parameters"];
    o << "natperf (RFC 9693) - " << p.value("proto", "") << ", " << p.value("frame_size", 0)
      << "-byte frames, " << p.value("tuples", 0) << " tuples (src ports " << p.value("src_ports", "")
      << " x dst ports " << p.value("dst_ports", "") << "), seed " << p.value("seed", 0) << "\n";
    o << "  initiator " << p.value("initiator_port", "") << " " << p.value("initiator_ip", "")
      << " via " << p.value("initiator_gateway", "") << "; responder " << p.value("responder_port", "")
      << " " << p.value("responder_ip", "") << "\n";
    for (const json& t : r["tests"]) {
        o << "\n== " << t.value("test", "?");
        if (t.contains("direction")) o << " (" << t["direction"].get<std::string>() << ")";
        o << " ==\n";
        trial_table(o, t);
        if (t.contains("error")) o << "  could not run: " << t["error"].get<std::string>() << "\n";
        if (t.contains("summary")) o << "  " << t["summary"].get<std::string>() << "\n";
    }
    return o.str();
}

}  // namespace natperf
