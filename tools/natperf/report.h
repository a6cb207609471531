// natperf's report: every trial and figure as JSON (nlohmann), and the human tables rendered
// from that same JSON, so the two never disagree. RFC reporting formats where the RFCs give
// one: throughput in frames/s with the frame size (RFC 2544 section 26.1 / RFC 9693), frame
// loss rate in percent of the offered frames (RFC 2544 section 26.3), latency as typical
// (median) and worst-case (99.9th percentile) latency in microseconds (RFC 8219),
// connection rates in connections/s and capacity in connections (RFC 9693).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "traffic_engine.h"

namespace natperf {

// A direction's counters: planned, sent, received, lost, loss_percent, ... and, when latency
// was sampled, typical_latency_us / worst_case_latency_us / min / max / samples.
nlohmann::json direction_json(const DirectionStats& d, double tsc_hz);

// Percentile (0..100) of sorted TSC samples, in microseconds (nearest rank).
double percentile_us(const std::vector<uint64_t>& sorted_cycles, double pct, double tsc_hz);

// The human tables of a whole report (parameters, each test's trials, each figure).
std::string human_report(const nlohmann::json& report);

}  // namespace natperf
