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
    SynSent,      // SYN_SENT: unanswered      -> tcp_syn_sent; first reclaimed under pressure
    SynRecv,      // SYN_RECV: answered, never established -> tcp_syn_recv
    Established,  // ESTABLISHED               -> tcp_established
    Transitory,   // FIN_WAIT .. LAST_ACK      -> tcp_transitory
    Quarantine,   // the remote may hold TIME_WAIT, or expired: pair held -> quarantine
    Linger,       // the remote closed passively, or in-window RST   -> linger
    Udp,
    Icmp,
    Count
};
inline constexpr int kTimeoutClasses = static_cast<int>(TimeoutClass::Count);

// Never established: the sessions a SYN flood leaves, reclaimed first under pressure (I7).
inline constexpr bool is_embryonic(TimeoutClass c) {
    return c == TimeoutClass::SynSent || c == TimeoutClass::SynRecv;
}

namespace session_flag {
inline constexpr uint8_t kInUse = 0x01;
// The remote closed actively, so it holds TIME_WAIT for the pair: its first FIN came before
// the inside's, or did not acknowledge it (simultaneous close). Set once, on the first remote
// FIN seen; an RST later does not clear it (RFC 1337 peers keep TIME_WAIT).
inline constexpr uint8_t kRemoteHoldsTimeWait = 0x02;
inline constexpr uint8_t kInsideClosedFirst = 0x04;  // first FIN came from inside
inline constexpr uint8_t kReset = 0x08;              // ended by an accepted (in-window) RST
inline constexpr uint8_t kInsideFin = 0x10;          // the inside sent a FIN
inline constexpr uint8_t kRemoteFin = 0x20;          // the remote sent a FIN
// The inside's segments carry TCP timestamps: NatWorker keeps the newest TSval it sent on the
// pair (what the remote's TIME_WAIT compares a new SYN against, RFC 6191).
inline constexpr uint8_t kInsideTimestamps = 0x40;
// The session owns its public port (it took it while no session did): PortAllocator clears the
// port's bit when this session ends. Sessions sharing the port toward other remotes do not.
inline constexpr uint8_t kOwnsPort = 0x80;
}  // namespace session_flag

namespace tcp_dir_flag {
inline constexpr uint8_t kWindowScale = 0x01;  // this side sent the window-scale option
inline constexpr uint8_t kInitialized = 0x02;  // this side's first segment was seen
inline constexpr uint8_t kFinAcked = 0x04;     // the remote's FIN: the inside acknowledged it
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
