// The snatgw daemon's configuration: an INI file read with Boost.Program_options, command-line
// flags (the same dotted names, `--dataplane.workers 2`) overriding it, EAL arguments after `--`.
//
// Control path only. parse_command_line either returns a fully validated DaemonConfig (with the
// engine's NatConfig already built from its pools and rules) or throws ConfigError whose message
// says where (file:line or "command line"), which option, and what is wrong. The reference for
// every option is docs/configuration.md; the lab's file is conf/snatgw.conf.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config_builder.h"
#include "event_logger.h"
#include "nat_config.h"

namespace snatgw {

inline constexpr const char* kDefaultConfigPath = "/etc/snatgw/snatgw.conf";

// One DPDK port.
struct PortSpec {
    std::string role;         // "inside" or "outside"
    std::string device;       // PCI address (0000:03:00.0) or a vdev string (net_af_xdp0,iface=gw-in)
    uint32_t address = 0;     // the gateway's own address on this port, host order
    uint8_t prefix_len = 0;   // of the attached subnet
    uint32_t gateway = 0;     // outside only: default route next hop (0 = none)

    bool is_pci() const;      // device matches DDDD:BB:DD.F or BB:DD.F
    uint32_t netmask() const { return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len); }
    uint32_t network() const { return address & netmask(); }
    bool in_subnet(uint32_t a) const { return (a & netmask()) == network(); }
    bool operator==(const PortSpec&) const = default;
};

// A static route out of the outside port.
struct RouteSpec {
    uint32_t prefix = 0;  // host order, no bits beyond length
    uint8_t length = 0;
    uint32_t via = 0;     // next hop on the outside subnet
    bool operator==(const RouteSpec&) const = default;
};

struct DaemonConfig {
    // [dataplane]
    uint16_t workers = 1;                 // worker lcores = RX/TX queues per port
    std::string lcores;                   // EAL core list for main + workers, "" = "0-<workers>"
    uint32_t mbufs = 16383;               // mbufs per port
    uint16_t burst = 32;                  // 1..64
    uint32_t sessions = 262143;           // session table capacity per worker (>= 64)
    uint32_t hosts = 16384;               // inside hosts per worker
    // Memory for the public ports' state of every pool address (24 KiB per address, whatever the
    // worker count: a /16 pool is 1536 MiB). A configuration or live change needing more is
    // refused (check_port_state_budget).
    uint32_t port_state_mb = 2048;
    uint32_t idle_polls = 64;             // empty polls before a worker sleeps
    uint32_t idle_sleep_us = 0;           // 0 = busy poll; else sleep up to this long (max 100000)
    std::string steering = "auto";        // auto | rss | flow | software  (auto: best the ports support)
    uint32_t handoff_ring = 4096;         // slots per worker-pair handoff ring (power of two)
    bool forward_unmatched = false;       // forward inside traffic no rule matches, untranslated
    // [inside], [outside], [routes]
    PortSpec inside, outside;
    std::vector<RouteSpec> routes;
    // [pool.NAME] sections and [nat] rules
    std::vector<PoolSpec> pools;
    std::vector<RuleSpec> rules;
    NatConfig nat;                        // built from pools/rules by build_nat_config(workers, ...)
    // [control]
    std::string control_socket = "/run/snatgw/snatgw.sock";
    std::string metrics = "127.0.0.1:9469";  // host:port, "" = off
    std::string log_level = "info";        // trace debug info warn error
    std::vector<std::string> eal_args;     // everything after "--" on the command line
    // [events]
    EventLogConfig events;
    std::string config_file;               // the file it was read from (the default for `save`)
};

struct CommandLine {
    DaemonConfig config;
    bool help = false;          // --help: help_text holds every option with its doc and default
    bool check_only = false;    // --check-config
    std::string help_text;
};

// Parses argv (`snatgw [--config FILE] [--check-config] [--help] [--section.option value ...]
// [-- EAL args]`), reads the file (kDefaultConfigPath when --config is absent), applies the
// command-line overrides, validates everything. Throws ConfigError naming the place, the option
// and the problem, e.g. "snatgw.conf:14: outside.gateway: 198.20.0.1 is not in the outside
// subnet 198.19.0.0/24". Never returns a half-valid config. With --help nothing is read.
CommandLine parse_command_line(int argc, const char* const* argv);

// The running config written back as a file the daemon can start from (for a later `save`).
// parse_command_line on the result gives back the same settings (eal_args, which only the
// command line carries, appear as a comment).
std::string render_config_file(const DaemonConfig& c);

// The EAL core list to use: c.lcores, or "0-<workers>" when it is empty.
std::string effective_lcores(const DaemonConfig& c);

}  // namespace snatgw
