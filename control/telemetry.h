// DPDK telemetry commands (dpdk-telemetry.py, /var/run/dpdk/<prefix>/dpdk_telemetry.v2):
//
//   /snatgw/stats         totals: the worker counters summed, sessions, uptime, steering
//   /snatgw/workers       per worker: each counter name -> array indexed like "worker"
//   /snatgw/drops         drops by reason (every reason, totals)
//   /snatgw/sessions      live sessions: tcp_<state>, udp, icmp
//   /snatgw/ports_in_use  per pool address: columns pool, address, tcp, udp, icmp,
//                         per_protocol_capacity (arrays, one entry per address)
//   /snatgw/ports         what each DPDK port counted: inside_rx, inside_missed, ...
//
// DPDK 22.11 dictionaries hold only numbers, strings and arrays of those (names limited to
// [A-Za-z0-9_/]), so nested data is laid out as parallel arrays, as /ethdev/stats does.
//
// Callbacks carry no user pointer: one process-wide provider supplies the snapshot. DPDK cannot
// unregister a command, so the provider is reset to empty instead (the commands then answer an
// error). The provider runs on DPDK's telemetry thread, under a lock that
// reset_telemetry_provider() also takes: once that returns, the provider is not running and will
// not be called again. The provider must not call register_telemetry() or the reset itself.
#pragma once

#include <array>
#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "stats_snapshot.h"

struct rte_tel_data;

namespace snatgw {

using StatsProvider = std::function<StatsSnapshot()>;

inline constexpr std::array<std::string_view, 6> kTelemetryCommands = {
    "/snatgw/stats", "/snatgw/workers",      "/snatgw/drops",
    "/snatgw/sessions", "/snatgw/ports_in_use", "/snatgw/ports"};

// Sets the provider and registers the commands (the first time only). Throws
// std::runtime_error if DPDK refuses a command.
void register_telemetry(StatsProvider provider);
// Empties the provider; waits for a call in progress to finish.
void reset_telemetry_provider();

// What `command` answers for snapshot `s`, as JSON (an object whose values are unsigned
// numbers, strings, or arrays of one of those). Null for an unknown command.
nlohmann::json telemetry_dict(std::string_view command, const StatsSnapshot& s);

// The callback registered for every command: telemetry_dict() of the provider's snapshot into
// `d`. 0 on success; -ENODEV without a provider, -EINVAL for an unknown command, -EIO when
// the provider throws, -E2BIG when the answer exceeds DPDK's limits (more than 512 pool
// addresses, say). The arrays added to `d` are freed by DPDK when it sends the reply.
int telemetry_callback(const char* cmd, const char* params, rte_tel_data* d);

}  // namespace snatgw
