// The control socket's protocol (API v1, newline-delimited JSON): parsing and validating one
// request line against the schema of its command, the reply lines, and typed views of the
// arguments for the daemon's handler (session filters, timeouts, pool changes).
//
// Control path only: every problem is a ControlError carrying the API's error code
// (bad_request, parse_error, ...) and one sentence naming the field. Values use the config
// file's syntax and the parsers of config_builder.h, so the socket and the file agree.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config_builder.h"
#include "nat_config.h"

namespace snatgw {

inline constexpr int kControlProtocolVersion = 1;

// An error answer: `code` is one of the API's codes (parse_error, bad_request,
// unknown_command, unsupported_version, request_too_large, busy, not_found, conflict,
// invalid_config, internal, stopping); what() is the message.
struct ControlError : std::runtime_error {
    ControlError(std::string code, const std::string& message)
        : std::runtime_error(message), code(std::move(code)) {}
    std::string code;
};

// A validated request. `args` is always an object (empty when the request had none) whose keys
// and values passed the command's schema; `id` is null when the request carried none.
struct ControlRequest {
    int version = kControlProtocolVersion;
    std::string command;
    nlohmann::json args = nlohmann::json::object();
    nlohmann::json id;
};

// Executes one request; returns the reply's "result". Throws ControlError for error answers;
// any other exception becomes an "internal" error.
using ControlHandler = std::function<nlohmann::json(const ControlRequest&)>;

// Parses one request line (without its '\n') / validates an already parsed request.
// Throws ControlError: parse_error, bad_request, unsupported_version, unknown_command.
ControlRequest parse_request(std::string_view line);
ControlRequest validate_request(const nlohmann::json& request);

// The whole exchange for one line: parse, validate, call the handler, build the reply line
// (ending in '\n'). Never throws for any input: errors are replies. The id is echoed whenever
// the line was a JSON object with an "id", even when it failed validation.
std::string answer_request_line(std::string_view line, const ControlHandler& handler);

// Reply lines (one JSON object + '\n'). A null id is left out of the reply.
std::string ok_reply(const nlohmann::json& id, nlohmann::json result);
std::string error_reply(const nlohmann::json& id, std::string code, std::string message);

// The commands the protocol knows ("version", "stats", ..., "save").
const std::vector<std::string>& control_commands();

// ---------------------------------------------------------------------------------------------
// Typed views of validated arguments for the daemon side. Each throws ControlError
// ("bad_request", naming the field) if a value is wrong, so they are safe on raw args too.
// ---------------------------------------------------------------------------------------------

// "198.19.0.10" or "198.19.0.10:8080". Host byte order; no port: any port.
struct Endpoint {
    uint32_t addr = 0;
    std::optional<uint16_t> port;
    bool operator==(const Endpoint&) const = default;
};

struct SessionFilter {
    std::optional<Endpoint> inside, outside, remote;
    std::optional<uint8_t> proto;      // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP
    std::optional<std::string> state;  // a TCP state name (tcp_state_name), "udp" or "icmp"
    std::optional<uint16_t> worker;
    std::optional<std::string> pool;
    bool all = false;                  // sessions.flush {"all": true}: every session

    // True when no field restricts the match (only `all` may be set).
    bool empty() const {
        return !inside && !outside && !remote && !proto && !state && !worker && !pool;
    }
};

// `sessions` arguments: the filter plus paging.
struct SessionQuery {
    SessionFilter filter;
    uint32_t offset = 0;
    uint32_t limit = 100;
    bool count_only = false;
};

// A timeouts object where every field is optional (seconds).
struct PartialTimeouts {
    std::optional<uint32_t> tcp_established, tcp_transitory, tcp_syn_sent, tcp_syn_recv, udp, icmp,
        quarantine, linger;

    bool empty() const {
        return !tcp_established && !tcp_transitory && !tcp_syn_sent && !tcp_syn_recv && !udp &&
               !icmp && !quarantine && !linger;
    }
    // `base` with the given fields replaced.
    Timeouts applied_to(Timeouts base) const;
};

// pool.add: spec.timeouts is Timeouts{} with the given fields applied; `timeouts` keeps what
// was given in case the daemon has other defaults.
struct PoolAddRequest {
    PoolSpec spec;
    PartialTimeouts timeouts;
    std::vector<std::string> rules;  // prefixes routed to this pool
};

// pool.set: only what was given. `rules`, when given, replaces the pool's rules.
struct PoolSetRequest {
    std::string name;
    std::optional<std::string> add_addresses, del_addresses, ports;
    std::optional<uint32_t> max_sessions_per_host, max_embryonic_per_host;
    std::optional<std::vector<std::string>> rules;
};

SessionFilter parse_session_filter(const nlohmann::json& args);
SessionQuery parse_session_query(const nlohmann::json& args);
PartialTimeouts parse_timeouts(const nlohmann::json& timeouts);  // the "timeouts" object itself
PoolAddRequest parse_pool_add(const nlohmann::json& args);
PoolSetRequest parse_pool_set(const nlohmann::json& args);

// All six timeouts as the API prints them.
nlohmann::json timeouts_to_json(const Timeouts& t);

// Value syntax shared with snatctl's output. parse_* throw ConfigError like config_builder.h.
Endpoint parse_endpoint(std::string_view text);
std::string format_endpoint(uint32_t addr, uint16_t port);  // "198.19.0.10:8080"
uint8_t parse_proto(std::string_view text);                 // "tcp" | "udp" | "icmp"
const char* proto_name(uint8_t proto);                      // "tcp", "udp", "icmp", "?"
bool is_valid_pool_name(std::string_view name);             // [A-Za-z0-9_-]{1,32}

}  // namespace snatgw
