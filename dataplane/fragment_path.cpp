// NatWorker's fragment path (declared in nat_worker.h): "virtual reassembly" of IPv4
// fragments, see docs/architecture.md, Fragments.
//
// Every fragment of a datagram gets what its first fragment got. The first fragment carries the
// whole L4 header, so it goes through the session pipeline like a whole packet (the incremental
// checksum update stays right for the whole datagram, RFC 1624); the datagram's entry in the
// fragment table remembers the outcome, and later fragments only have their IPv4 address
// rewritten, or are handed off or dropped like their first. Later fragments that come before
// the first wait in the table (bounded in number and time) and are released when it comes.
//
// Several workers, outside: a later fragment shows no port, so it cannot name the session's
// owner. Every outside fragment goes first to the datagram's fragment owner (a hash of its
// key); there the first fragment names the session's owner, and the fragment owner hands it
// and every later fragment (those that waited too) to that worker, in order over one ring.
#include <arpa/inet.h>

#include "checksum.h"
#include "nat_worker.h"
#include "translate.h"

namespace snatgw {

namespace {

constexpr uint32_t kMaxDatagram = 65535;       // IPv4 total length limit (ping of death beyond)
constexpr uint16_t kMaxHeldPerDatagram = 64;   // a 64 KiB datagram is 45 fragments at MTU 1500
constexpr uint32_t kExpireBatch = 64;          // datagrams ended per expire() call, at most

// The first fragment's ports in wire order (ICMP: identifier and type), to tell a repeated
// first fragment from the first of a newer datagram that reuses the IP id.
void first_ports(const PacketView& v, uint16_t& a, uint16_t& b) {
    if (v.proto == kProtoIcmp) {
        a = csum::load16(v.l4() + l4_off::kIcmpId);
        b = v.l4()[l4_off::kIcmpType];
    } else {
        a = csum::load16(v.l4() + l4_off::kSport);
        b = csum::load16(v.l4() + l4_off::kDport);
    }
}

// The public port (ICMP: identifier) of an outside first fragment, host order.
uint16_t public_port(const PacketView& v) {
    return ntohs(csum::load16(v.l4() + (v.proto == kProtoIcmp ? l4_off::kIcmpId : l4_off::kDport)));
}

// A later fragment has no L4 header: only the IPv4 address changes (source inside -> outside,
// destination outside -> inside), with the header checksum.
void rewrite_address(const PacketView& v, Side side, uint32_t addr) {
    uint8_t* ip = v.l3();
    const uint32_t off = side == Side::Inside ? ipv4_off::kSrc : ipv4_off::kDst;
    const uint32_t old = csum::load32(ip + off);
    csum::store16(ip + ipv4_off::kCsum,
                  csum::update32(csum::load16(ip + ipv4_off::kCsum), old, addr));
    csum::store32(ip + off, addr);
}

FragmentKey key_of(const PacketView& v, Side side) {
    const uint8_t* ip = v.l3();
    FragmentKey k;
    k.src = csum::load32(ip + ipv4_off::kSrc);
    k.dst = csum::load32(ip + ipv4_off::kDst);
    k.id = csum::load16(ip + ipv4_off::kId);
    k.proto = v.proto;
    k.side = side == Side::Inside ? 0 : 1;
    return k;
}

void set_handoff(FrameResult& r, uint16_t worker) {
    r.verdict = Verdict::Handoff;
    r.worker = worker;
}

}  // namespace

void NatWorker::fragment(Side side, Frame& f, FrameResult& r, Pending& p, void* cookie,
                         uint16_t from, uint32_t now_ms) {
    const PacketView& v = p.v;
    ++counters_.fragments;
    const bool first = v.frag_offset == 0;
    // RFC 791: every fragment but the last carries a multiple of 8 bytes, and a datagram ends
    // within 65535 bytes.
    if (v.l4_len == 0 || (v.more_fragments && v.l4_len % 8 != 0) ||
        (v.l4_off - v.l3_off) + v.frag_offset + v.l4_len > kMaxDatagram)
        return drop(r, DropReason::FragmentMalformed);
    // TCP avoids fragmentation (path MTU discovery, MSS) and its tracking needs the segment's
    // whole length: not translated.
    if (v.proto == kProtoTcp) return drop(r, DropReason::Ipv4Fragment);

    const FragmentKey key = key_of(v, side);
    const uint16_t workers = config_->workers;
    bool via_owner = false;  // handed over by the fragment owner, which decided already
    if (side == Side::Outside && workers > 1) {
        // Every outside fragment passes its fragment owner first: the one worker that sees
        // them all, so its state follows the datagram to the end. It hands them, the first
        // included, to the session's owner.
        const uint16_t fo = fragment_owner(key, workers);
        if (fo != params_.worker_id) {
            if (from != fo) {
                ++counters_.handoffs;
                return set_handoff(r, fo);
            }
            via_owner = true;
        }
    }
    uint16_t sport = 0, dport = 0;
    if (first) first_ports(v, sport, dport);
    int32_t di = frags_.find(key);
    if (di >= 0 && first && frags_.at(static_cast<uint32_t>(di)).first_seen &&
        (frags_.at(static_cast<uint32_t>(di)).sport != sport ||
         frags_.at(static_cast<uint32_t>(di)).dport != dport)) {
        // The same key with other ports: the state is an older datagram's whose IP id came
        // round again (RFC 4963) while it was incomplete. This one starts afresh.
        discard_datagram(static_cast<uint32_t>(di), DropReason::FragmentExpired);
        di = -1;
    }
    if (di < 0) {
        // A later fragment without state: it waits for its first, unless it cannot (no cookie)
        // or the fragment owner decided already and the state here is gone (timed out).
        if (!first && (via_owner || cookie == nullptr))
            return drop(r, DropReason::FragmentUnmatched);
        di = new_datagram(key, now_ms);
        if (di < 0) return drop(r, DropReason::FragmentHoldFull);
    }
    const uint32_t idx = static_cast<uint32_t>(di);
    Datagram& d = frags_.at(idx);
    if (first) {
        d.first_seen = true;
        d.sport = sport;
        d.dport = dport;
    }
    d.seen_bytes += v.l4_len;
    if (!v.more_fragments) d.total_bytes = v.frag_offset + v.l4_len;

    if (d.action == DatagramAction::Wait && first) {
        decide(idx, side, p, r, now_ms);
    } else if (d.action == DatagramAction::Wait) {
        if (cookie == nullptr) {
            drop(r, DropReason::FragmentUnmatched);
        } else if (d.held >= kMaxHeldPerDatagram ||
                   frags_.held() + ready_n_ >= frags_.held_capacity() ||
                   !frags_.hold(idx, f.data, f.len, cookie, side)) {
            drop(r, DropReason::FragmentHoldFull);
        } else {
            r.held = true;
            ++counters_.fragments_held;
        }
    } else if (first && d.action == DatagramAction::Translate) {
        // The same first fragment again (a duplicate): through the session again.
        translate_first(side, p, r, now_ms);
    } else {
        apply_to_later(d, v, side, r);
    }

    // Every byte seen: done. (Overlapping fragments make a datagram look complete early; a
    // straggler then waits for a first fragment that does not come again, and expires.)
    if (d.action != DatagramAction::Wait && d.total_bytes != 0 && d.seen_bytes >= d.total_bytes)
        frags_.remove(idx);
    fragment_gauges();
}

// The datagram's first fragment has come: it decides for all of its fragments.
void NatWorker::decide(uint32_t di, Side side, Pending& p, FrameResult& r, uint32_t now_ms) {
    Datagram& d = frags_.at(di);
    const uint16_t workers = config_->workers;
    if (side == Side::Outside && workers > 1) {
        const uint16_t so = port_owner(public_port(p.v), workers);
        if (so != params_.worker_id) {
            d.action = DatagramAction::Handoff;
            d.worker = so;
            ++counters_.handoffs;
            set_handoff(r, so);
            return release_held(di);
        }
    }
    translate_first(side, p, r, now_ms);
    if (r.verdict == Verdict::Forward) {
        d.action = DatagramAction::Translate;
        d.addr = csum::load32(p.v.l3() + (side == Side::Inside ? ipv4_off::kSrc : ipv4_off::kDst));
    } else {
        d.action = DatagramAction::Drop;
        d.reason = r.reason;
    }
    release_held(di);
}

// A first fragment through the session pipeline, as a whole packet would go.
void NatWorker::translate_first(Side side, Pending& p, FrameResult& r, uint32_t now_ms) {
    // ICMP errors are small (RFC 1812: 576 bytes at most); a fragmented one is not translated.
    if (p.v.proto == kProtoIcmp && p.v.icmp != IcmpKind::Echo)
        return drop(r, DropReason::Ipv4Fragment);
    DropReason why = DropReason::Count;
    if (!make_key(side, p, why)) return drop(r, why);
    const int32_t id =
        side == Side::Inside ? sessions_.lookup_inside(p.key) : sessions_.lookup_outside(p.key);
    if (id >= 0) {
        ++counters_.found;
        fast_path(side, static_cast<uint32_t>(id), p, r, now_ms);
    } else if (side == Side::Inside) {
        slow_path_inside(p, r, now_ms);
    } else {
        drop(r, DropReason::NoSession);
    }
}

// What the first fragment decided, applied to a later one (or to a repeated first that is not
// translated here).
void NatWorker::apply_to_later(const Datagram& d, const PacketView& v, Side side,
                               FrameResult& r) {
    switch (d.action) {
        case DatagramAction::Translate:
            if (packet_ttl(v) <= 1) {
                ++counters_.ttl_exceeded;
                drop(r, DropReason::TtlExpired);
                r.verdict = Verdict::TtlExceeded;
                return;
            }
            rewrite_address(v, side, d.addr);
            decrement_ttl(v);
            r.verdict = Verdict::Forward;
            r.l3_off = static_cast<uint16_t>(v.l3_off);
            ++counters_.forwarded[static_cast<int>(side)];
            return;
        case DatagramAction::Handoff:
            ++counters_.handoffs;
            return set_handoff(r, d.worker);
        case DatagramAction::Drop:
            return drop(r, d.reason);
        case DatagramAction::Wait:
            return drop(r, DropReason::FragmentUnmatched);
    }
}

// The datagram's waiting fragments, now decided, to the released list (in arrival order).
void NatWorker::release_held(uint32_t di) {
    const Datagram& d = frags_.at(di);
    frags_.take_held(di, [&](const HeldFragment& h) {
        ReleasedFrame& out = ready_push();
        out.cookie = h.cookie;
        out.side = h.side;
        out.result = FrameResult{};
        PacketView hv;
        // It parsed when it came, and nobody wrote to it since; its checksum is not checked
        // again (the header is unchanged).
        if (parse_frame(h.data, h.len, hv, false, true).cls != FrameClass::Ipv4)
            return drop(out.result, DropReason::FragmentMalformed);
        apply_to_later(d, hv, h.side, out.result);
    });
}

// Ends a datagram: its waiting fragments are dropped for `why`.
void NatWorker::discard_datagram(uint32_t di, DropReason why) {
    frags_.take_held(di, [&](const HeldFragment& h) {
        ReleasedFrame& out = ready_push();
        out.cookie = h.cookie;
        out.side = h.side;
        out.result = FrameResult{};
        drop(out.result, why);
    });
    frags_.remove(di);
}

int32_t NatWorker::new_datagram(const FragmentKey& key, uint32_t now_ms) {
    // Full: the oldest datagram makes room (a completed datagram leaves at once, so what stays
    // long is mostly incomplete; under a flood, newer datagrams win).
    for (int attempt = 0; attempt < 2; ++attempt) {
        if ((frags_.full() || attempt > 0) && frags_.oldest() != kNoFragment) {
            discard_datagram(frags_.oldest(), DropReason::FragmentExpired);
            ++counters_.fragment_datagrams_evicted;
        }
        const int32_t di = frags_.add(key, now_ms);
        if (di >= 0) return di;  // else its hash bucket was full: evict once more
    }
    return -1;
}

void NatWorker::expire_fragments(uint32_t now_ms) {
    for (uint32_t n = 0; n < kExpireBatch; ++n) {
        const uint32_t o = frags_.oldest();
        if (o == kNoFragment || now_ms - frags_.at(o).created_ms < params_.fragment_timeout_ms)
            break;
        discard_datagram(o, DropReason::FragmentExpired);
    }
    fragment_gauges();
}

void NatWorker::drop_held() {
    while (frags_.oldest() != kNoFragment)
        discard_datagram(frags_.oldest(), DropReason::FragmentExpired);
    fragment_gauges();
}

// The released ring never overflows: a fragment counts against the hold budget from the moment
// it is held until the caller takes it back (see the check before FragmentTable::hold).
ReleasedFrame& NatWorker::ready_push() {
    const uint32_t cap = frags_.held_capacity() ? frags_.held_capacity() : 1;
    ReleasedFrame& slot = ready_[(ready_head_ + ready_n_) % cap];
    ++ready_n_;
    return slot;
}

uint32_t NatWorker::take_released(ReleasedFrame* out, uint32_t max) {
    const uint32_t cap = frags_.held_capacity() ? frags_.held_capacity() : 1;
    uint32_t n = 0;
    while (n < max && ready_n_ != 0) {
        out[n++] = ready_[ready_head_];
        ready_head_ = (ready_head_ + 1) % cap;
        --ready_n_;
    }
    if (n != 0) fragment_gauges();
    return n;
}

void NatWorker::fragment_gauges() {
    counters_.fragment_datagrams = frags_.size();
    counters_.fragments_waiting = frags_.held() + ready_n_;
}

}  // namespace snatgw
