// One NAT session: the mapping of an inside (address, port) toward one remote (address, port)
// onto a public (address, port), plus its TCP tracking state and its place in an expiry list.
//
// Exactly 64 bytes (one cache line): the memory budget per session is <= 160 bytes including
// both hash entries. Owned by one worker; nobody else reads or writes it.
#pragma once

#include <cstdint>

namespace snatgw {

enum class TcpState : uint8_t {
    None,  // UDP / ICMP sessions
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Closed,
    Expired,  // timed out in an open state: no traffic passes, the pair is held in quarantine
    Count
};

const char* tcp_state_name(TcpState s);

// Which expiry list (and timeout) a session is on.
enum class TimeoutClass : uint8_t {
    Embryonic,    // SYN_SENT, SYN_RECV        -> tcp_transitory; first evicted when full
    Established,  // ESTABLISHED               -> tcp_established
    Transitory,   // FIN_WAIT .. LAST_ACK      -> tcp_transitory
    Quarantine,   // remote closed first, or expired: pair held -> quarantine
    Linger,       // inside closed first, or RST                 -> linger
    Udp,
    Icmp,
    Count
};
inline constexpr int kTimeoutClasses = static_cast<int>(TimeoutClass::Count);

namespace session_flag {
inline constexpr uint8_t kInUse = 0x01;
inline constexpr uint8_t kRemoteClosedFirst = 0x02;  // first FIN came from outside
inline constexpr uint8_t kInsideClosedFirst = 0x04;  // first FIN came from inside
inline constexpr uint8_t kReset = 0x08;              // ended by an accepted RST
}  // namespace session_flag

namespace tcp_dir_flag {
inline constexpr uint8_t kWindowScale = 0x01;  // this side sent the window-scale option
inline constexpr uint8_t kInitialized = 0x02;  // this side's first segment was seen
}  // namespace tcp_dir_flag

// Direction index for per-direction tracking.
inline constexpr int kOrig = 0;   // inside -> outside
inline constexpr int kReply = 1;  // outside -> inside

struct alignas(64) Session {
    // Addresses and ports in network byte order, as in the packet (and the hash keys).
    uint32_t inside_addr;
    uint32_t outside_addr;
    uint32_t remote_addr;
    uint16_t inside_port;   // ICMP: inside identifier
    uint16_t outside_port;  // ICMP: public identifier
    uint16_t remote_port;   // ICMP: 0
    uint8_t proto;
    TcpState state;
    uint8_t flags;      // session_flag
    TimeoutClass tclass;
    uint16_t pool_id;

    uint32_t last_seen_ms;  // worker clock of the last packet
    uint32_t lru_prev;      // expiry list links (session indexes; kNil ends)
    uint32_t lru_next;

    // Per-direction TCP window tracking in the manner of nf_conntrack's tcp_in_window:
    // end: highest sequence sent + 1; maxend: highest sequence the peer allows (ack + window);
    // maxwin: largest window seen; scale: window-scale shift.
    uint32_t td_end[2];
    uint32_t td_maxend[2];
    uint32_t td_maxwin[2];
    uint8_t td_scale[2];
    uint8_t td_flags[2];
};

static_assert(sizeof(Session) == 64, "a session must fit one cache line");

inline constexpr uint32_t kNil = 0xffffffffu;

}  // namespace snatgw
