// TCP connection tracking for one session: the state machine (SYN_SENT .. TIME_WAIT, CLOSED)
// and per-direction sequence/window checks in the manner of nf_conntrack's tcp_in_window
// (end, maxend, maxwin, window scaling), judged by the pool's leniency policy.
//
// Pure functions over a Session and a decoded segment: no I/O, no allocation.
#pragma once

#include <cstdint>

#include "drop_reasons.h"
#include "nat_config.h"
#include "packet_view.h"
#include "session.h"

namespace snatgw {

struct TcpSegment {
    uint32_t seq = 0;
    uint32_t ack = 0;
    uint32_t payload_len = 0;
    uint16_t window = 0;   // raw, unscaled
    uint8_t flags = 0;
    int8_t wscale = -1;    // window-scale option value, -1 when absent (SYN only)
    bool has_ts = false;   // timestamps option present (read on SYN only)
    uint32_t tsval = 0;    // its TSval
};

// Reads the segment fields (and, on SYN, the window-scale and timestamps options) of a parsed
// TCP packet.
TcpSegment read_tcp_segment(const PacketView& v);

// The TSval of a parsed TCP packet's timestamps option; false when it has none. Walks the
// options: for the closing segments only, not the fast path.
bool read_tcp_tsval(const PacketView& v, uint32_t& tsval);

// Flag combinations a real TCP stack sends (as nf_conntrack's tcp_valid_flags).
bool tcp_flags_valid(uint8_t flags);

struct TcpVerdict {
    bool forward = true;
    DropReason reason = DropReason::Count;  // when !forward
    bool rst_ignored = false;  // an out-of-window RST forwarded without ending the session
};

// (Re)starts tracking from an inside SYN: SYN_SENT, original direction initialised.
void tcp_open(Session& s, const TcpSegment& syn);

// Does a bare SYN from inside on an existing session start a new connection on it (the caller
// then reopens it with tcp_open, keeping its mapping)? Yes in SYN_SENT (a retransmission or a
// new ISN), after the connection ended (TIME_WAIT, CLOSED, expired), and on an open one
// (ESTABLISHED .. LAST_ACK: the host rebooted and reused its port) unless the SYN is an old
// duplicate of this connection's own (its sequence number below what the inside sent, within
// the window). Under every policy, as conntrack. SYN_RECV: no (a retransmitted SYN).
bool tcp_syn_reopens(const Session& s, const TcpSegment& syn);

// Tracks one segment of an existing session in direction `dir` (kOrig or kReply) and says
// whether it may pass. Updates the state and window data only for segments it accepts in
// window (under `liberal`, every segment but an out-of-window RST). An RST changes the state
// only when it is in window, under every policy.
TcpVerdict tcp_track(Session& s, int dir, const TcpSegment& seg, Policy policy);

// Whether the remote may hold TIME_WAIT for the session's pair: it closed actively (see
// session_flag::kRemoteHoldsTimeWait), or the session expired while open.
bool tcp_remote_may_hold_pair(const Session& s);

// The expiry list a TCP session belongs on in its current state.
TimeoutClass tcp_timeout_class(const Session& s);

}  // namespace snatgw
