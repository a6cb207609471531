// The gateway's counters in the Prometheus text exposition format 0.0.4, served on /metrics
// (metrics_server.h). Rendered from a StatsSnapshot; every family has # HELP and # TYPE, names
// follow Prometheus conventions (snatgw_ prefix, counters end in _total, base units).
//
// Per-worker families carry a `worker` label (sum() over it for the gateway); drops, sessions
// by state and port use are gateway totals. Every drop reason and TCP state is always present,
// at zero too, so rates and alerts work from the first scrape.
#pragma once

#include <string>
#include <string_view>

#include "stats_snapshot.h"

namespace snatgw {

// The Content-Type of prometheus_text()'s output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string prometheus_text(const StatsSnapshot& s);

// Escaping of the text format: a label value escapes backslash, double quote and newline;
// HELP text escapes backslash and newline.
std::string prometheus_escape_label(std::string_view value);
std::string prometheus_escape_help(std::string_view help);

}  // namespace snatgw
