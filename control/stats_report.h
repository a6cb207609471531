// Human-readable counters of a running (or stopping) gateway, in the manner of `conntrack -S`:
// the steering in use, one line per worker and a total, then drops by reason, sessions by state,
// the loop's and the control lcore's counters, what each port counted, public ports in use per
// pool address, and the event log. Rendered from a StatsSnapshot (stats_snapshot.h).
//
// Scripts read it (tests/integration, tools/lab): keep the line prefixes and key=value names;
// new keys go at the end of a line.
#pragma once

#include <string>

#include "stats_snapshot.h"

namespace snatgw {

std::string format_stats(const StatsSnapshot& s);

}  // namespace snatgw
