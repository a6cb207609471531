// TCP state machine and window tracking; see tcp_tracker.h.
//
// The window checks follow nf_conntrack's tcp_in_window():
//   I.   seq is not beyond what the receiver allowed:   before(seq, sender.maxend + 1)
//   II.  the segment is not entirely too old:           after(end, sender.end - receiver.maxwin - 1)
//   III. the ack is not for data never sent:            before(ack, receiver.end + 1)
//   IV.  the ack is not too old:                        after(ack, receiver.end - MAXACKWINDOW)
// I and III failing mean "beyond the window"; II and IV failing mean "an old duplicate".
#include "tcp_tracker.h"

#include "byte_order.h"

namespace snatgw {

namespace {

bool before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
bool after(uint32_t a, uint32_t b) { return before(b, a); }

constexpr uint32_t kMaxAckWindowFloor = 66000;  // as conntrack's MAXACKWINDOW()
constexpr uint8_t kMaxWindowScale = 14;         // RFC 7323

uint32_t segment_end(const TcpSegment& seg) {
    uint32_t end = seg.seq + seg.payload_len;
    if (seg.flags & kTcpSyn) ++end;
    if (seg.flags & kTcpFin) ++end;
    return end;
}

// First segment seen from a side (the SYN, or the SYN/ACK for the reply side).
void init_direction(Session& s, int dir, const TcpSegment& seg) {
    const uint32_t end = segment_end(seg);
    s.td_end[dir] = end;
    s.td_maxend[dir] = end;
    s.td_maxwin[dir] = seg.window == 0 ? 1 : seg.window;
    s.td_flags[dir] = tcp_dir_flag::kInitialized;
    s.td_scale[dir] = 0;
    if (seg.wscale >= 0) {
        s.td_flags[dir] |= tcp_dir_flag::kWindowScale;
        s.td_scale[dir] = static_cast<uint8_t>(seg.wscale > kMaxWindowScale ? kMaxWindowScale
                                                                            : seg.wscale);
    }
}

void set_state(Session& s, TcpState st) { s.state = st; }

// Who will hold TIME_WAIT. The side that closes actively does: the remote did when its first
// FIN did not acknowledge a FIN of the inside (it came first, or the two crossed: simultaneous
// close, where both ends hold TIME_WAIT). A remote FIN that acknowledges the inside's FIN is a
// passive close. Only the first remote FIN decides: a retransmission of it acknowledges the
// inside's FIN even after a simultaneous close.
void note_fin(Session& s, int dir, const TcpSegment& seg) {
    if (dir == kOrig) {
        s.flags |= session_flag::kInsideFin;
        return;
    }
    if (s.flags & session_flag::kRemoteFin) return;
    s.flags |= session_flag::kRemoteFin;
    const bool acks_inside_fin = (s.flags & session_flag::kInsideFin) &&
                                 (seg.flags & kTcpAck) && !before(seg.ack, s.td_end[kOrig]);
    if (!acks_inside_fin) s.flags |= session_flag::kRemoteHoldsTimeWait;
}

// The state machine proper, run on segments already accepted (an RST: only in window).
void advance_state(Session& s, int dir, const TcpSegment& seg) {
    const uint8_t f = seg.flags;
    if (f & kTcpRst) {
        s.flags |= session_flag::kReset;
        set_state(s, TcpState::Closed);
        return;
    }
    const bool fin = (f & kTcpFin) != 0;
    const bool ack = (f & kTcpAck) != 0;
    if (fin && s.state >= TcpState::SynRecv && s.state <= TcpState::LastAck) note_fin(s, dir, seg);
    // The inside acknowledged the remote's FIN (the ACK, or the inside's own FIN, covers it).
    if (dir == kOrig && ack && (s.flags & session_flag::kRemoteFin) &&
        !before(seg.ack, s.td_end[kReply]))
        s.td_flags[kReply] |= tcp_dir_flag::kFinAcked;
    switch (s.state) {
        case TcpState::SynSent:
            if ((f & kTcpSyn) && ack && dir == kReply) set_state(s, TcpState::SynRecv);
            break;
        case TcpState::SynRecv:
            if (fin) {
                if (dir == kOrig) s.flags |= session_flag::kInsideClosedFirst;
                set_state(s, TcpState::FinWait);
            } else if (ack && dir == kOrig && !(f & kTcpSyn)) {
                set_state(s, TcpState::Established);
            }
            break;
        case TcpState::Established:
            if (fin) {
                if (dir == kOrig) s.flags |= session_flag::kInsideClosedFirst;
                set_state(s, TcpState::FinWait);
            }
            break;
        case TcpState::FinWait:
        case TcpState::CloseWait: {
            const bool from_closer =
                (dir == kOrig) == ((s.flags & session_flag::kInsideClosedFirst) != 0);
            if (!from_closer && fin)
                set_state(s, TcpState::LastAck);
            else if (!from_closer && ack && s.state == TcpState::FinWait)
                set_state(s, TcpState::CloseWait);
            break;
        }
        case TcpState::LastAck:
            // Both FINs were seen; TIME_WAIT once the inside has acknowledged the remote's FIN.
            // That is when the remote, if it closed actively, enters TIME_WAIT (from FIN_WAIT2 on
            // the inside's FIN, from CLOSING on the ACK of its FIN after a simultaneous close),
            // and when the inside enters it if it closed first. The remote's ACK of the inside's
            // FIN is not enough: after crossed FINs the remote sends it from CLOSING, and a new
            // SYN on the pair before the inside's ACK arrives gets a challenge ACK. A
            // retransmitted FIN acknowledges nothing new.
            if (s.td_flags[kReply] & tcp_dir_flag::kFinAcked) set_state(s, TcpState::TimeWait);
            break;
        default:
            break;
    }
}

}  // namespace

namespace {

// Calls f(kind, len, option) for each well-formed option of a TCP header; every read is
// bounded by the data offset (validated by the parser).
template <typename F>
void for_each_tcp_option(const uint8_t* th, F&& f) {
    const uint32_t doff = (th[l4_off::kTcpDataOff] >> 4) * 4u;
    uint32_t i = kTcpMinHeader;
    while (i < doff) {
        const uint8_t kind = th[i];
        if (kind == 0) break;              // end of options
        if (kind == 1) { ++i; continue; }  // NOP
        if (i + 1 >= doff) break;
        const uint8_t len = th[i + 1];
        if (len < 2 || i + len > doff) break;
        if (!f(kind, len, th + i)) break;
        i += len;
    }
}

}  // namespace

TcpSegment read_tcp_segment(const PacketView& v) {
    const uint8_t* th = v.l4();
    TcpSegment seg;
    seg.seq = load_be32(th + l4_off::kTcpSeq);
    seg.ack = load_be32(th + l4_off::kTcpAck);
    seg.window = load_be16(th + l4_off::kTcpWindow);
    seg.flags = th[l4_off::kTcpFlags];
    const uint32_t doff = (th[l4_off::kTcpDataOff] >> 4) * 4u;  // validated by the parser
    seg.payload_len = v.l4_len - doff;
    if (seg.flags & kTcpSyn) {
        // Window scale (kind 3, length 3) and timestamps (kind 8, length 10).
        for_each_tcp_option(th, [&](uint8_t kind, uint8_t len, const uint8_t* opt) {
            if (kind == 3 && len == 3) seg.wscale = static_cast<int8_t>(opt[2] & 0x7f);
            if (kind == 8 && len == 10) {
                seg.has_ts = true;
                seg.tsval = load_be32(opt + 2);
            }
            return true;
        });
    }
    return seg;
}

bool read_tcp_tsval(const PacketView& v, uint32_t& tsval) {
    bool found = false;
    for_each_tcp_option(v.l4(), [&](uint8_t kind, uint8_t len, const uint8_t* opt) {
        if (kind == 8 && len == 10) {
            tsval = load_be32(opt + 2);
            found = true;
        }
        return !found;
    });
    return found;
}

bool tcp_flags_valid(uint8_t flags) {
    // Ignore PSH, ECE, CWR, URG as conntrack does, then accept only what stacks send.
    const uint8_t f = flags & (kTcpFin | kTcpSyn | kTcpRst | kTcpAck);
    switch (f) {
        case kTcpSyn:
        case kTcpSyn | kTcpAck:
        case kTcpRst:
        case kTcpRst | kTcpAck:
        case kTcpFin | kTcpAck:
        case kTcpAck:
            return true;
        default:
            return false;
    }
}

void tcp_open(Session& s, const TcpSegment& syn) {
    s.state = TcpState::SynSent;
    s.flags &= session_flag::kInUse | session_flag::kOwnsPort;  // the session, not the connection
    s.td_end[kReply] = s.td_maxend[kReply] = s.td_maxwin[kReply] = 0;
    s.td_scale[kReply] = 0;
    s.td_flags[kReply] = 0;
    init_direction(s, kOrig, syn);
}

bool tcp_syn_reopens(const Session& s, const TcpSegment& syn) {
    switch (s.state) {
        case TcpState::SynSent:
        case TcpState::TimeWait:
        case TcpState::Closed:
        case TcpState::Expired:
            return true;
        case TcpState::Established:
        case TcpState::FinWait:
        case TcpState::CloseWait:
        case TcpState::LastAck: {
            // An old duplicate of this connection's SYN lies below what the inside has sent,
            // within the window the remote allowed; a rebooted host's new ISN almost never.
            const uint32_t end = syn.seq + 1;
            const bool old = !after(end, s.td_end[kOrig]) &&
                             after(end, s.td_end[kOrig] - s.td_maxwin[kReply] - 1);
            return !old;
        }
        default:
            return false;
    }
}

bool tcp_remote_may_hold_pair(const Session& s) {
    return s.state == TcpState::Expired || (s.flags & session_flag::kRemoteHoldsTimeWait);
}

TcpVerdict tcp_track(Session& s, int dir, const TcpSegment& seg, Policy policy) {
    if (!tcp_flags_valid(seg.flags)) return {false, DropReason::TcpInvalidFlags};
    const int other = dir ^ 1;
    const bool syn = (seg.flags & kTcpSyn) != 0;
    const bool ack_flag = (seg.flags & kTcpAck) != 0;

    // A bare SYN from outside: simultaneous open while we wait for the SYN/ACK, otherwise an
    // unexpected SYN that only the liberal policy lets through.
    if (syn && !ack_flag && dir == kReply && s.state != TcpState::SynSent) {
        if (policy == Policy::Liberal) return {};
        return {false, DropReason::TcpOutOfWindow};
    }

    // First segment from this side (normally the SYN/ACK): take its window data.
    if (!(s.td_flags[dir] & tcp_dir_flag::kInitialized)) {
        if (!syn) {
            // Mid-stream from a side we never saw open: nothing to check against.
            if (policy != Policy::Liberal && !(seg.flags & kTcpRst))
                return {false, DropReason::TcpOutOfWindow};
        } else {
            init_direction(s, dir, seg);
            // Window scaling holds only if both SYNs carried the option (RFC 7323).
            if (!((s.td_flags[dir] & tcp_dir_flag::kWindowScale) &&
                  (s.td_flags[other] & tcp_dir_flag::kWindowScale))) {
                s.td_scale[dir] = 0;
                s.td_scale[other] = 0;
            }
        }
    }

    const uint32_t end = segment_end(seg);
    uint32_t ack = seg.ack;
    if (!ack_flag) ack = s.td_end[other];  // no ACK: treat as acking what the peer sent
    // The window field of a SYN is never scaled (RFC 7323).
    const uint32_t win = syn ? seg.window : uint32_t{seg.window} << s.td_scale[dir];

    bool beyond = false;  // data past what the receiver allowed, or acking unsent data
    bool old = false;     // an old duplicate: entirely below the window, or a stale ack
    if (s.td_flags[other] & tcp_dir_flag::kInitialized) {
        const uint32_t max_ack_window =
            s.td_maxwin[dir] > kMaxAckWindowFloor ? s.td_maxwin[dir] : kMaxAckWindowFloor;
        const bool in_upper = before(seg.seq, s.td_maxend[dir] + 1);
        const bool in_lower = after(end, s.td_end[dir] - s.td_maxwin[other] - 1);
        const bool ack_not_ahead = before(ack, s.td_end[other] + 1);
        const bool ack_not_stale = after(ack, s.td_end[other] - max_ack_window);
        beyond = !in_upper || (ack_flag && !ack_not_ahead);
        old = !in_lower || (ack_flag && !ack_not_stale);
    }

    if (seg.flags & kTcpRst) {
        // Only an RST in window ends the session, under every policy: the endpoints ignore the
        // others (RFC 5961), so a stale or spoofed RST must not hand a live pair to another
        // host. `liberal` still forwards it.
        if (beyond || old) {
            if (policy != Policy::Liberal) return {false, DropReason::TcpRstOutOfWindow};
            TcpVerdict v;
            v.rst_ignored = true;
            return v;
        }
        advance_state(s, dir, seg);
        return {};
    }

    if (beyond || old) {
        switch (policy) {
            case Policy::Liberal:
                // Forwarded, and tracked as if in window: the state machine must keep up (a
                // close after a window overrun must still reach TIME_WAIT and free the pair).
                break;
            case Policy::RetransOk:
                if (!beyond) return {};  // an old duplicate: let the endpoint deal with it
                return {false, DropReason::TcpOutOfWindow};
            case Policy::Strict:
                return {false, DropReason::TcpOutOfWindow};
        }
    }

    // Update the tracking data (conntrack's "update sender/receiver data").
    if (s.td_maxwin[dir] < win) s.td_maxwin[dir] = win;
    if (after(end, s.td_end[dir])) s.td_end[dir] = end;
    if (ack_flag) {
        if (s.td_maxwin[other] != 0 && after(end, s.td_maxend[dir]))
            s.td_maxwin[other] += end - s.td_maxend[dir];
        if (after(ack + win, s.td_maxend[other] - 1)) {
            s.td_maxend[other] = ack + win;
            if (win == 0) ++s.td_maxend[other];
        }
    }
    advance_state(s, dir, seg);
    return {};
}

TimeoutClass tcp_timeout_class(const Session& s) {
    switch (s.state) {
        case TcpState::SynSent:
            return TimeoutClass::SynSent;
        case TcpState::SynRecv:
            return TimeoutClass::SynRecv;
        case TcpState::Established:
            return TimeoutClass::Established;
        case TcpState::FinWait:
        case TcpState::CloseWait:
        case TcpState::LastAck:
            return TimeoutClass::Transitory;
        case TcpState::TimeWait:
        case TcpState::Closed:
            // Where the remote may hold TIME_WAIT (it closed actively, even if an RST came
            // after), the pair must not go to another inside host before the quarantine
            // (invariant I4). A passive remote close or an in-window RST without a remote FIN
            // leaves the remote nothing to hold: a short linger.
            if (s.flags & session_flag::kRemoteHoldsTimeWait) return TimeoutClass::Quarantine;
            return TimeoutClass::Linger;
        case TcpState::Expired:
            return TimeoutClass::Quarantine;
        default:
            return TimeoutClass::Transitory;
    }
}

const char* tcp_state_name(TcpState s) {
    switch (s) {
        case TcpState::None: return "none";
        case TcpState::SynSent: return "syn_sent";
        case TcpState::SynRecv: return "syn_recv";
        case TcpState::Established: return "established";
        case TcpState::FinWait: return "fin_wait";
        case TcpState::CloseWait: return "close_wait";
        case TcpState::LastAck: return "last_ack";
        case TcpState::TimeWait: return "time_wait";
        case TcpState::Closed: return "closed";
        case TcpState::Expired: return "expired";
        default: return "unknown";
    }
}

}  // namespace snatgw
