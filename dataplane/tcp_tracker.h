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
};

// Reads the segment fields (and, on SYN, the window-scale option) of a parsed TCP packet.
TcpSegment read_tcp_segment(const PacketView& v);

// Flag combinations a real TCP stack sends (as nf_conntrack's tcp_valid_flags).
bool tcp_flags_valid(uint8_t flags);

struct TcpVerdict {
    bool forward = true;
    DropReason reason = DropReason::Count;  // when !forward
};

// (Re)starts tracking from an inside SYN: SYN_SENT, original direction initialised.
void tcp_open(Session& s, const TcpSegment& syn);

// Tracks one segment of an existing session in direction `dir` (kOrig or kReply) and says
// whether it may pass. Updates the state and window data only for segments it accepts
// in window. A SYN from inside on a TIME_WAIT/CLOSED/EXPIRED session is the caller's
// business (it reopens with tcp_open).
TcpVerdict tcp_track(Session& s, int dir, const TcpSegment& seg, Policy policy);

// The expiry list a TCP session belongs on in its current state.
TimeoutClass tcp_timeout_class(const Session& s);

}  // namespace snatgw
