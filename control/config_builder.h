// Builds and validates the dataplane's NatConfig snapshot from textual pool and rule
// descriptions (as they come from the config file or a control request).
//
// Control path only: errors are thrown as ConfigError with a message that names the pool or
// rule and the problem; nothing is half-built.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nat_config.h"

namespace snatgw {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct PoolSpec {
    std::string name;
    // Comma-separated addresses, ranges "a-b" and prefixes "a/len": "198.19.0.10-198.19.0.13".
    std::string addresses;
    std::string ports = "1024-65535";
    std::string policy = "liberal";
    Timeouts timeouts;
    uint32_t max_sessions_per_host = 0;
    uint32_t max_embryonic_per_host = Pool{}.max_embryonic_per_host;
    // Live changes (control API): addresses removed from the pool that may still carry
    // sessions, and a deleted pool kept for its sessions. Never written to a config file.
    std::vector<uint32_t> draining;
    bool retired = false;
};

struct RuleSpec {
    std::string prefix;  // inside sources, "198.18.0.0/24"
    std::string pool;    // pool name
};

// Pool ids are the positions in `pools`; retired pools keep theirs (no rule may name them,
// their addresses do not count as taken). Throws ConfigError.
NatConfig build_nat_config(uint16_t workers, const std::vector<PoolSpec>& pools,
                           const std::vector<RuleSpec>& rules);

// Throws ConfigError naming dataplane.port_state_mb when the snapshot's addresses (the pools'
// and those draining) need more port state than `limit_mb` MiB (port_state.h).
void check_port_state_budget(const NatConfig& c, uint32_t limit_mb);

// Parsers shared with the config file and the control API. Host byte order.
uint32_t parse_ipv4(std::string_view text);
std::pair<uint32_t, uint8_t> parse_prefix(std::string_view text);
std::vector<uint32_t> parse_address_list(std::string_view text);
std::pair<uint16_t, uint16_t> parse_port_range(std::string_view text);
Policy parse_policy(std::string_view text);
std::string format_ipv4(uint32_t host_order);

}  // namespace snatgw
