// The NAT configuration as the dataplane sees it: an immutable snapshot of pools, rules,
// leniency policies and timeouts. The control plane builds and validates it
// (control/config_builder.h); a worker only reads it.
//
// Addresses and ports are in host byte order here; the packet path converts at its edges.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace snatgw {

class PortIndex;

// How a TCP segment outside the tracked window is treated (per pool).
enum class Policy : uint8_t {
    Liberal,    // track state, never drop for window reasons
    Strict,     // drop anything outside the window; RST only in window
    RetransOk,  // forward old duplicates (below the window), drop data beyond it
};

// Idle timeouts in seconds (defaults: RFC 5382, 4787, 7857; quarantine: invariant I4).
struct Timeouts {
    uint32_t tcp_established = 7440;
    uint32_t tcp_transitory = 240;  // closing states (FIN_WAIT .. LAST_ACK)
    // Unanswered and never-established handshakes (conntrack's values): shorter than
    // tcp_transitory so a SYN flood's sessions do not hold pairs for 4 minutes, longer than the
    // gaps between a Linux client's SYN retries (up to 64 s) and a server's SYN/ACK retries.
    uint32_t tcp_syn_sent = 120;
    uint32_t tcp_syn_recv = 60;
    uint32_t udp = 120;
    uint32_t icmp = 60;
    uint32_t quarantine = 120;  // a (port, remote) pair the remote closed first, or that expired
    uint32_t linger = 2;        // a pair closed inside-first or by RST

    bool operator==(const Timeouts&) const = default;
};

struct Pool {
    uint16_t id = 0;  // index in NatConfig::pools; stored in sessions, stable across snapshots
    std::string name;
    std::vector<uint32_t> addresses;  // public addresses new sessions may use
    // Addresses removed while they may still carry sessions: no new sessions, the existing ones
    // keep working until they end (invariant I6).
    std::vector<uint32_t> draining;
    // A deleted pool keeps its slot (its id is in live sessions, which keep its policy and
    // timeouts); no rule points to it and all its addresses are draining.
    bool retired = false;
    uint16_t port_min = 1024;
    uint16_t port_max = 65535;
    Policy policy = Policy::Liberal;
    Timeouts timeouts;
    uint32_t max_sessions_per_host = 0;  // 0: no cap
    // Never-established TCP sessions one inside host may hold on one worker; beyond it the
    // host's new SYN takes over its own oldest handshake (a flood recycles its own pairs and
    // cannot pin the pool: invariant I7). 0: no cap.
    uint32_t max_embryonic_per_host = 4096;
};

// Inside sources in prefix/len are translated with pool `pool`. Longest prefix wins.
struct Rule {
    uint32_t prefix = 0;
    uint8_t length = 0;
    uint16_t pool = 0;
};

struct NatConfig {
    uint16_t workers = 1;          // port partitions: owner(port) = port % workers
    std::vector<Pool> pools;
    std::vector<Rule> rules;       // sorted longest prefix first (config_builder does it)
    // The public ports' state of every address, one index per worker, built on the control
    // thread (PortStateStore::attach, port_state.h) so a worker adopts a snapshot with a pointer
    // swap. Unlike the rest of the snapshot, the states it points to are written by their
    // worker. Empty in a snapshot built without a daemon: the engine then builds its own.
    std::vector<std::shared_ptr<const PortIndex>> port_state;

    // Longest-prefix match over the rules; nullptr when no rule covers src.
    const Pool* pool_for_source(uint32_t src) const {
        for (const Rule& r : rules) {
            const uint32_t mask = r.length == 0 ? 0 : ~uint32_t{0} << (32 - r.length);
            if ((src & mask) == r.prefix) return &pools[r.pool];
        }
        return nullptr;
    }

    // The pool owning a public address, or nullptr.
    const Pool* pool_for_address(uint32_t addr) const {
        for (const Pool& p : pools)
            for (uint32_t a : p.addresses)
                if (a == addr) return &p;
        return nullptr;
    }
};

const char* policy_name(Policy p);

}  // namespace snatgw
