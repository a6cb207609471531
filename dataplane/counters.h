// Per-worker counters. Written only by the owning worker (plain stores, no atomics);
// other threads may read them at any time and accept a slightly stale value.
#pragma once

#include <array>
#include <cstdint>

#include "drop_reasons.h"
#include "session.h"

namespace snatgw {

enum class Side : uint8_t { Inside, Outside };

struct WorkerCounters {
    uint64_t rx[2] = {};          // packets given to the engine, by arrival side
    uint64_t forwarded[2] = {};   // translated and forwarded, by arrival side
    uint64_t found = 0;           // session lookups that hit
    uint64_t sessions_created = 0;
    uint64_t sessions_reopened = 0;  // a new SYN reused a TIME_WAIT/CLOSED/expired session
    uint64_t sessions_expired = 0;   // idle timeout (TCP moves to quarantine first)
    uint64_t sessions_freed = 0;     // keys removed, port returned
    uint64_t sessions_evicted = 0;   // early drop to make room
    // Never-established sessions freed for a new one: their host reached its embryonic cap, or
    // no pair toward a remote was left (the host holding the most handshakes pays, I7).
    uint64_t sessions_reclaimed = 0;
    // A pair held for the remote's TIME_WAIT given to a new SYN the remote accepts on it (a
    // newer timestamp, or a higher ISN: RFC 6191), and SYNs for which held pairs were found
    // but none would be accepted (then ports_exhausted, unless a handshake was reclaimed).
    uint64_t pairs_reused_timewait = 0;
    uint64_t pairs_reuse_refused = 0;
    uint64_t tcp_rst_ignored = 0;    // out-of-window RST forwarded (liberal), session kept
    uint64_t pair_count_failed = 0;  // pair-count table refused a key (should stay 0)
    uint64_t sessions_flushed = 0;   // ended by an operator (sessions flush)
    uint64_t insert_failed = 0;      // hash insert refused while the table had room
    uint64_t handoffs = 0;           // packets for another worker's ports
    uint64_t punted = 0;             // ARP and other frames for the control plane
    uint64_t ttl_exceeded = 0;       // reported to the caller (also counted as a drop)
    uint64_t fragments = 0;          // IPv4 fragments given to the engine (also in rx)
    uint64_t fragments_held = 0;     // fragments that waited for their datagram's first one
    uint64_t fragment_datagrams_evicted = 0;  // datagram state dropped to make room
    std::array<uint64_t, kDropReasonCount> drops = {};

    // Gauges: sessions by TCP state, and UDP / ICMP sessions.
    std::array<uint64_t, static_cast<std::size_t>(TcpState::Count)> tcp_state = {};
    uint64_t udp_sessions = 0;
    uint64_t icmp_sessions = 0;
    // Gauges: fragmented datagrams being tracked, and fragments waiting in the engine.
    uint64_t fragment_datagrams = 0;
    uint64_t fragments_waiting = 0;

    uint64_t drop_total() const {
        uint64_t t = 0;
        for (uint64_t d : drops) t += d;
        return t;
    }
};

}  // namespace snatgw
