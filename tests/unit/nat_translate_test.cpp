// NatTranslate*: TCP/UDP/ICMP-echo translation both ways, non-forward verdicts, mapping rules, bursts, handoff.
//
// Table-driven (in the manner of katran's test fixtures): each case names the side a frame
// arrives on, builds the frame (possibly after pushing earlier packets of its flow through the
// same engine, so it can know the public address/port it was given), and states the verdict,
// the drop reason or the exact output endpoints. The runner checks every forwarded frame by
// full checksum recomputation and byte-compares it with the input: only TTL, the IP checksum,
// the translated address, the translated port/identifier and the L4 checksum may change.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nat_fixture.h"

namespace snatgw::test {
namespace {

// ---------------------------------------------------------------------------
// Names for readable failures
// ---------------------------------------------------------------------------

std::string vname(Verdict v) {
    switch (v) {
        case Verdict::Forward: return "Forward";
        case Verdict::Drop: return "Drop";
        case Verdict::Handoff: return "Handoff";
        case Verdict::TtlExceeded: return "TtlExceeded";
        case Verdict::Punt: return "Punt";
    }
    return "?";
}

std::string rname(DropReason r) {
    if (r >= DropReason::Count) return "none";
    return std::string(drop_reason_name(r));
}

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

enum class Proto { Tcp, Udp, Udp0, Echo };  // Udp0: UDP without checksum (field 0)

const char* proto_name(Proto p) {
    switch (p) {
        case Proto::Tcp: return "TCP";
        case Proto::Udp: return "UDP";
        case Proto::Udp0: return "UDP(csum 0)";
        case Proto::Echo: return "ICMP echo";
    }
    return "?";
}

constexpr Proto kProtos[] = {Proto::Tcp, Proto::Udp, Proto::Udp0, Proto::Echo};

constexpr uint32_t kIsn = 1000;         // inside host's initial sequence number
constexpr uint32_t kRemoteIsn = 50000;  // remote's
constexpr size_t kData = 37;            // payload length of data packets (odd on purpose)

struct Flow {
    Proto proto = Proto::Udp;
    uint32_t inside = 0;
    uint16_t iport = 0;  // ICMP: echo identifier
    uint32_t remote = 0;
    uint16_t rport = 0;  // ICMP: unused
    uint32_t pub = 0;    // public address and port, filled in by open()
    uint16_t pport = 0;
};

Flow flow(Proto p, const char* inside, uint16_t iport, const char* remote, uint16_t rport) {
    Flow f;
    f.proto = p;
    f.inside = ip(inside);
    f.iport = iport;
    f.remote = ip(remote);
    f.rport = p == Proto::Echo ? 0 : rport;
    return f;
}

Flow default_flow(Proto p) {
    return flow(p, "198.18.0.1", p == Proto::Echo ? 0x4d2 : 40000, "198.19.0.100", p == Proto::Tcp ? 80 : 53);
}

enum class Kind { Open, Data };

// A packet of the flow from the inside host. TCP Open = bare SYN, Data = PSH|ACK with payload.
// UDP: a datagram. Echo: a request. Non-SYN packets carry kData payload bytes.
PacketBuilder from_inside(const Flow& f, Kind k = Kind::Data) {
    PacketBuilder b;
    b.eth().ipv4(f.inside, f.remote);
    switch (f.proto) {
        case Proto::Tcp:
            if (k == Kind::Open) b.tcp(f.iport, f.rport, kIsn, 0, TCP_SYN).tcp_option_mss(1460);
            else b.tcp(f.iport, f.rport, kIsn + 1, kRemoteIsn + 1, TCP_PSH | TCP_ACK).payload(kData);
            break;
        case Proto::Udp: b.udp(f.iport, f.rport).payload(kData); break;
        case Proto::Udp0: b.udp(f.iport, f.rport).udp_zero_checksum().payload(kData); break;
        case Proto::Echo: b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, f.iport, k == Kind::Open ? 1 : 2).payload(kData); break;
    }
    return b;
}

// A packet of the flow from the remote to the public endpoint. TCP Open = SYN|ACK.
PacketBuilder from_outside(const Flow& f, Kind k = Kind::Data) {
    PacketBuilder b;
    b.eth().ipv4(f.remote, f.pub);
    switch (f.proto) {
        case Proto::Tcp:
            if (k == Kind::Open) b.tcp(f.rport, f.pport, kRemoteIsn, kIsn + 1, TCP_SYN | TCP_ACK).tcp_option_mss(1400);
            else b.tcp(f.rport, f.pport, kRemoteIsn + 1, kIsn + 1, TCP_PSH | TCP_ACK).payload(kData);
            break;
        case Proto::Udp: b.udp(f.rport, f.pport).payload(kData); break;
        case Proto::Udp0: b.udp(f.rport, f.pport).udp_zero_checksum().payload(kData); break;
        case Proto::Echo: b.icmp_echo(ICMP_TYPE_ECHO_REPLY, f.pport, 1).payload(kData); break;
    }
    return b;
}

bool is_pool_address(uint32_t a) { return a == ip("198.19.0.10") || a == ip("198.19.0.11"); }

// Sends the flow's first packet from inside and remembers the public endpoint it was given.
Flow open(NatHarness& h, Flow f, uint32_t now_ms = 1000) {
    auto o = h.out(from_inside(f, Kind::Open).build(), now_ms);
    EXPECT_EQ(vname(o.result.verdict), "Forward") << "opening " << proto_name(f.proto) << " flow from "
                                                  << ip_str(f.inside) << ":" << f.iport << " ("
                                                  << rname(o.result.reason) << ")";
    auto d = decode(o.frame);
    if (o.result.verdict != Verdict::Forward || !d) {
        ADD_FAILURE() << "flow not opened";
        return f;
    }
    f.pub = d->src;
    f.pport = d->sport;
    return f;
}

// open() and, for TCP, the SYN/ACK from outside and the ACK from inside.
Flow establish(NatHarness& h, Flow f, uint32_t now_ms = 1000) {
    f = open(h, f, now_ms);
    if (f.proto != Proto::Tcp || f.pub == 0) return f;
    auto sa = h.in(from_outside(f, Kind::Open).build(), now_ms);
    EXPECT_EQ(vname(sa.result.verdict), "Forward") << "SYN/ACK: " << rname(sa.result.reason);
    PacketBuilder ack;
    ack.eth().ipv4(f.inside, f.remote).tcp(f.iport, f.rport, kIsn + 1, kRemoteIsn + 1, TCP_ACK);
    auto a = h.out(ack.build(), now_ms);
    EXPECT_EQ(vname(a.result.verdict), "Forward") << "ACK: " << rname(a.result.reason);
    return f;
}

std::vector<uint8_t> arp_frame() {
    std::vector<uint8_t> f(60, 0);
    for (int i = 0; i < 6; ++i) f[i] = 0xff;
    for (int i = 0; i < 6; ++i) f[6 + i] = DEFAULT_SRC_MAC[i];
    f[12] = 0x08;
    f[13] = 0x06;
    const uint8_t arp[] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};  // Ethernet/IPv4, request
    for (size_t i = 0; i < sizeof(arp); ++i) f[14 + i] = arp[i];
    detail::wr32(&f[14 + 14], ip("198.18.0.1"));   // sender IP
    detail::wr32(&f[14 + 24], ip("198.18.0.254"));  // target IP
    return f;
}

// A payload of n (even) bytes such that a UDP datagram src:sport -> dst:dport carrying it has a
// checksum that computes to 0 (transmitted as 0xffff).
std::vector<uint8_t> zero_csum_payload(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, size_t n) {
    std::vector<uint8_t> seg(8 + n, 0);
    detail::wr16(&seg[0], sport);
    detail::wr16(&seg[2], dport);
    detail::wr16(&seg[4], static_cast<uint16_t>(8 + n));
    for (size_t i = 0; i < n; ++i) seg[8 + i] = static_cast<uint8_t>(0x5a + 3 * i);
    const uint16_t c = l4_checksum(src, dst, PROTO_UDP, seg.data(), seg.size());
    // Adding the checksum to one word (one's complement) makes the sum 0xffff: checksum 0.
    uint32_t w = detail::rd16(&seg[8 + n - 2]) + uint32_t{c};
    w = (w & 0xffffu) + (w >> 16);
    detail::wr16(&seg[8 + n - 2], static_cast<uint16_t>(w));
    EXPECT_EQ(l4_checksum(src, dst, PROTO_UDP, seg.data(), seg.size()), 0) << "test setup";
    return std::vector<uint8_t>(seg.begin() + 8, seg.end());
}

// ---------------------------------------------------------------------------
// Cases and the runner
// ---------------------------------------------------------------------------

struct Input {
    std::vector<uint8_t> frame;
    // Expected endpoints of the forwarded frame. src == 0: a new mapping, the source must be a
    // pool address with a port in 1024-65535 (ICMP: the identifier), the rest exact.
    uint32_t src = 0, dst = 0;
    uint16_t sport = 0, dport = 0;
    int udp_csum = -1;  // >= 0: the exact UDP checksum field expected on output
};

struct Case {
    std::string description;
    Side side;
    std::function<Input(NatHarness&)> make;  // may push earlier packets through the harness
    Verdict verdict;
    DropReason reason = DropReason::Count;  // Drop and TtlExceeded
    uint64_t new_sessions = 0;              // sessions_created by this frame
    uint16_t workers = 1;                   // harness: workers, this one is worker 0
    uint16_t handoff_to = 0;                // Handoff
};

// Forwarded input whose endpoints must come out as given.
Input expect(const PacketBuilder& b, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
    return Input{b.build(), src, dst, sport, dport};
}
// Outbound packet of a flow that is mapped to f.pub:f.pport (already open).
Input expect_out(const PacketBuilder& b, const Flow& f) {
    return expect(b, f.pub, f.pport, f.remote, f.proto == Proto::Echo ? f.pport : f.rport);
}
// First packet of a new flow: public endpoint not known in advance.
Input expect_new(const PacketBuilder& b, const Flow& f) {
    return expect(b, 0, 0, f.remote, f.proto == Proto::Echo ? 0 : f.rport);
}
// Inbound packet of a flow: back to the inside endpoint.
Input expect_in(const PacketBuilder& b, const Flow& f) {
    return expect(b, f.remote, f.proto == Proto::Echo ? f.iport : f.rport, f.inside, f.iport);
}
// Not forwarded.
Input frame_only(const PacketBuilder& b) { return Input{b.build()}; }

// Offsets (from the frame start) of bytes that differ between a and b and that translation in
// the direction of `side` has no business changing.
std::string unexpected_changes(Side side, const Decoded& d, const std::vector<uint8_t>& a,
                               const std::vector<uint8_t>& b) {
    if (a.size() != b.size()) {
        std::string s = "frame length changed from ";
        s += std::to_string(a.size());
        s += " to ";
        s += std::to_string(b.size());
        return s;
    }
    std::set<size_t> allowed;
    auto allow = [&](size_t off, size_t n) {
        for (size_t i = 0; i < n; ++i) allowed.insert(off + i);
    };
    const bool out = side == Side::Inside;
    allow(d.l3_offset + 8, 1);                  // TTL
    allow(d.l3_offset + 10, 2);                 // header checksum
    allow(d.l3_offset + (out ? 12 : 16), 4);    // translated address
    switch (d.proto) {
        case PROTO_TCP:
            allow(d.l4_offset + (out ? 0 : 2), 2);
            allow(d.l4_offset + 16, 2);
            break;
        case PROTO_UDP:
            allow(d.l4_offset + (out ? 0 : 2), 2);
            allow(d.l4_offset + 6, 2);
            break;
        case PROTO_ICMP:
            allow(d.l4_offset + 2, 2);  // checksum
            allow(d.l4_offset + 4, 2);  // identifier
            break;
        default: break;
    }
    std::string bad;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i] && allowed.count(i) == 0) {
            bad += " ";
            bad += std::to_string(i);
        }
    }
    if (bad.empty()) return bad;
    std::string s = "bytes changed that translation must not touch, at offsets";
    s += bad;
    return s;
}

void check_forwarded(Side side, const Input& in, const NatOutcome& o) {
    const ChecksumReport cr = verify_checksums(o.frame);
    EXPECT_TRUE(cr.ok) << cr.detail;
    const auto din = decode(in.frame);
    const auto dout = decode(o.frame);
    ASSERT_TRUE(din.has_value());
    ASSERT_TRUE(dout.has_value());
    EXPECT_EQ(dout->ttl, din->ttl - 1) << "TTL decremented by exactly one";
    if (in.src == 0) {
        EXPECT_TRUE(is_pool_address(dout->src)) << "source " << ip_str(dout->src) << " is not a pool address";
        EXPECT_GE(dout->sport, 1024);
        if (din->proto == PROTO_ICMP) {
            EXPECT_EQ(dout->icmp_id, dout->sport);
        } else {
            EXPECT_EQ(dout->dport, in.dport);
        }
    } else {
        EXPECT_EQ(ip_str(dout->src), ip_str(in.src));
        EXPECT_EQ(dout->sport, in.sport);
        EXPECT_EQ(dout->dport, in.dport);
    }
    EXPECT_EQ(ip_str(dout->dst), ip_str(in.dst));
    if (din->proto == PROTO_UDP) {
        if (din->udp_checksum == 0) {
            EXPECT_EQ(dout->udp_checksum, 0) << "a zero UDP checksum must stay zero";
        } else {
            EXPECT_NE(dout->udp_checksum, 0) << "a UDP checksum must not become zero";
        }
    }
    if (in.udp_csum >= 0) {
        EXPECT_EQ(detail::hex16(dout->udp_checksum), detail::hex16(static_cast<uint16_t>(in.udp_csum)));
    }
    EXPECT_EQ(dout->payload_len, din->payload_len);
    EXPECT_EQ(dout->vlan, din->vlan);
    EXPECT_EQ(dout->vlan_id, din->vlan_id);
    EXPECT_EQ(dout->ihl_bytes, din->ihl_bytes);
    EXPECT_EQ(o.result.l3_off, din->l3_offset);
    const std::string bad = unexpected_changes(side, *din, in.frame, o.frame);
    EXPECT_TRUE(bad.empty()) << bad;
}

// Failures (and other results) reported so far in the running test.
int reported_parts() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
}

void run_case(const Case& c) {
    SCOPED_TRACE(c.description);
    NatHarness h({lab_pool()}, c.workers, 0);
    const int parts_before = reported_parts();
    const Input in = c.make(h);
    if (reported_parts() != parts_before) return;  // the setup already went wrong
    const WorkerCounters before = h.counters();
    const NatOutcome o = h.run(c.side, in.frame);
    const WorkerCounters& after = h.counters();
    const int side = static_cast<int>(c.side);

    EXPECT_EQ(vname(o.result.verdict), vname(c.verdict)) << "reason " << rname(o.result.reason);
    EXPECT_EQ(after.sessions_created - before.sessions_created, c.new_sessions) << "sessions created";
    EXPECT_EQ(after.rx[side] - before.rx[side], 1u);
    if (c.verdict == Verdict::Forward) {
        EXPECT_EQ(after.forwarded[side] - before.forwarded[side], 1u);
        EXPECT_EQ(after.drop_total(), before.drop_total());
        if (o.result.verdict == Verdict::Forward) check_forwarded(c.side, in, o);
        return;
    }
    EXPECT_EQ(after.forwarded[side], before.forwarded[side]);
    EXPECT_EQ(o.frame, in.frame) << "a frame that is not forwarded must be left as it arrived";
    switch (c.verdict) {
        case Verdict::Drop:
        case Verdict::TtlExceeded: {
            EXPECT_EQ(rname(o.result.reason), rname(c.reason));
            if (c.reason < DropReason::Count) {
                const auto r = static_cast<size_t>(c.reason);
                EXPECT_EQ(after.drops[r] - before.drops[r], 1u) << "drop counter of " << rname(c.reason);
            }
            if (c.verdict == Verdict::TtlExceeded) {
                EXPECT_EQ(after.ttl_exceeded - before.ttl_exceeded, 1u);
            }
            break;
        }
        case Verdict::Handoff:
            EXPECT_EQ(o.result.worker, c.handoff_to);
            EXPECT_EQ(after.handoffs - before.handoffs, 1u);
            EXPECT_EQ(after.drop_total(), before.drop_total());
            break;
        case Verdict::Punt:
            EXPECT_EQ(after.punted - before.punted, 1u);
            EXPECT_EQ(after.drop_total(), before.drop_total());
            break;
        case Verdict::Forward: break;
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

std::vector<Case> translation_cases() {
    std::vector<Case> cases;
    auto add = [&](std::string desc, Side side, std::function<Input(NatHarness&)> make, Verdict v,
                   DropReason reason = DropReason::Count, uint64_t new_sessions = 0) {
        cases.push_back(Case{std::move(desc), side, std::move(make), v, reason, new_sessions});
    };
    const auto In = Side::Inside;
    const auto Out = Side::Outside;
    const auto Fwd = Verdict::Forward;
    const auto Drop = Verdict::Drop;
    const auto Ttl = Verdict::TtlExceeded;

    for (Proto p : kProtos) {
        const std::string n = proto_name(p);
        const Flow f0 = default_flow(p);

        // --- outbound, new mapping ---
        add(n + " outbound first packet: source becomes pool address and port", In,
            [f0](NatHarness&) { return expect_new(from_inside(f0, Kind::Open), f0); }, Fwd, DropReason::Count, 1);
        add(n + " outbound first packet with VLAN tag", In,
            [f0](NatHarness&) {
                auto b = from_inside(f0, Kind::Open);
                b.vlan(100, 5);
                return expect_new(b, f0);
            },
            Fwd, DropReason::Count, 1);
        add(n + " outbound first packet with 8 bytes of IP options", In,
            [f0](NatHarness&) {
                auto b = from_inside(f0, Kind::Open);
                b.ip_options(8);
                return expect_new(b, f0);
            },
            Fwd, DropReason::Count, 1);
        add(n + " outbound first packet with VLAN tag and 40 bytes of IP options", In,
            [f0](NatHarness&) {
                auto b = from_inside(f0, Kind::Open);
                b.vlan(4094).ip_options(40);
                return expect_new(b, f0);
            },
            Fwd, DropReason::Count, 1);
        add(n + " outbound first packet padded to the 60-byte minimum frame", In,
            [f0](NatHarness&) {
                auto b = from_inside(f0, Kind::Open);
                b.payload(0).pad_to(60);
                return expect_new(b, f0);
            },
            Fwd, DropReason::Count, 1);

        // --- outbound, existing mapping ---
        add(n + " outbound second packet of the flow reuses the public address and port", In,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                return expect_out(from_inside(f, Kind::Data), f);
            },
            Fwd);
        add(n + " outbound packet of a live flow with VLAN tag and IP options", In,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_inside(f, Kind::Data);
                b.vlan(7).ip_options(12);
                return expect_out(b, f);
            },
            Fwd);

        // --- inbound replies ---
        if (p == Proto::Tcp) {
            add(n + " inbound SYN/ACK restores the inside address and port", Out,
                [f0](NatHarness& h) {
                    const Flow f = open(h, f0);
                    return expect_in(from_outside(f, Kind::Open), f);
                },
                Fwd);
        }
        add(n + " inbound reply restores the inside address and port", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                return expect_in(from_outside(f), f);
            },
            Fwd);
        add(n + " inbound reply with VLAN tag", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.vlan(100, 5);
                return expect_in(b, f);
            },
            Fwd);
        add(n + " inbound reply with 20 bytes of IP options", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.ip_options(20);
                return expect_in(b, f);
            },
            Fwd);
        add(n + " inbound reply with VLAN tag and 40 bytes of IP options", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.vlan(1).ip_options(40);
                return expect_in(b, f);
            },
            Fwd);
        add(n + " inbound reply to a flow that was opened with a VLAN tag", Out,
            [f0, p](NatHarness& h) {
                Flow f = f0;
                auto first = from_inside(f, Kind::Open);
                first.vlan(100);
                auto o = h.out(first.build());
                EXPECT_EQ(vname(o.result.verdict), "Forward");
                auto d = decode(o.frame);
                if (d) {
                    f.pub = d->src;
                    f.pport = d->sport;
                }
                auto b = from_outside(f, p == Proto::Tcp ? Kind::Open : Kind::Data);
                b.vlan(100);
                return expect_in(b, f);
            },
            Fwd);

        // --- TTL ---
        for (uint8_t ttl : {uint8_t{1}, uint8_t{0}}) {
            std::string d = n;
            d += " outbound new flow with TTL ";
            d += std::to_string(ttl);
            d += " -> TtlExceeded, no session";
            add(d, In,
                [f0, ttl](NatHarness&) {
                    auto b = from_inside(f0, Kind::Open);
                    b.ttl(ttl);
                    return frame_only(b);
                },
                Ttl, DropReason::TtlExpired, 0);
        }
        add(n + " outbound new flow with TTL 2 is forwarded with TTL 1", In,
            [f0](NatHarness&) {
                auto b = from_inside(f0, Kind::Open);
                b.ttl(2);
                return expect_new(b, f0);
            },
            Fwd, DropReason::Count, 1);
        add(n + " outbound TTL 1 on a live session -> TtlExceeded", In,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_inside(f);
                b.ttl(1);
                return frame_only(b);
            },
            Ttl, DropReason::TtlExpired);
        add(n + " inbound TTL 1 on a live session -> TtlExceeded", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.ttl(1);
                return frame_only(b);
            },
            Ttl, DropReason::TtlExpired);
        add(n + " inbound TTL 0 on a live session -> TtlExceeded", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.ttl(0);
                return frame_only(b);
            },
            Ttl, DropReason::TtlExpired);
        add(n + " inbound TTL 2 on a live session is forwarded with TTL 1", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f);
                b.ttl(2);
                return expect_in(b, f);
            },
            Fwd);

        // --- inbound without a session ---
        for (const char* pub : {"198.19.0.10", "198.19.0.11"}) {
            std::string d = n;
            d += " unsolicited inbound to pool address ";
            d += pub;
            d += " -> NoSession";
            add(d, Out,
                [f0, pub](NatHarness&) {
                    Flow f = f0;
                    f.pub = ip(pub);
                    f.pport = f0.proto == Proto::Echo ? 0x4d2 : 40000;
                    // TCP: a SYN from outside; UDP: a datagram; echo: a reply nobody asked for.
                    PacketBuilder b = from_outside(f, Kind::Data);
                    if (f.proto == Proto::Tcp) b.tcp(f.rport, f.pport, kRemoteIsn, 0, TCP_SYN);
                    return frame_only(b);
                },
                Drop, DropReason::NoSession);
        }
        if (p != Proto::Echo) {
            add(n + " inbound from the remote's other port -> NoSession (endpoint-dependent)", Out,
                [f0](NatHarness& h) {
                    Flow f = establish(h, f0);
                    f.rport = static_cast<uint16_t>(f.rport + 1);
                    return frame_only(from_outside(f));
                },
                Drop, DropReason::NoSession);
        }
        add(n + " inbound from another remote to a live public endpoint -> NoSession", Out,
            [f0](NatHarness& h) {
                Flow f = establish(h, f0);
                f.remote = ip("198.19.0.101");
                return frame_only(from_outside(f));
            },
            Drop, DropReason::NoSession);
        add(n + " inbound to the other pool address's same port -> NoSession", Out,
            [f0](NatHarness& h) {
                Flow f = establish(h, f0);
                f.pub = f.pub == ip("198.19.0.10") ? ip("198.19.0.11") : ip("198.19.0.10");
                return frame_only(from_outside(f));
            },
            Drop, DropReason::NoSession);

        // --- outbound without a rule ---
        add(n + " outbound from 198.18.1.5 (no rule covers it) -> NoRule", In,
            [f0](NatHarness&) {
                Flow f = f0;
                f.inside = ip("198.18.1.5");
                return frame_only(from_inside(f, Kind::Open));
            },
            Drop, DropReason::NoRule);
    }

    // --- protocol specifics ---
    const Flow tcp = default_flow(Proto::Tcp);
    const std::pair<const char*, uint8_t> not_syn[] = {
        {"ACK", TCP_ACK}, {"PSH|ACK", TCP_PSH | TCP_ACK}, {"SYN|ACK", TCP_SYN | TCP_ACK},
        {"FIN|ACK", TCP_FIN | TCP_ACK}, {"RST", TCP_RST}};
    for (const auto& [fname, flags] : not_syn) {
        std::string d = "TCP outbound ";
        d += fname;
        d += " without a session -> TcpNotSyn, no session";
        add(d, In,
            [tcp, flags = flags](NatHarness&) {
                PacketBuilder b;
                b.eth().ipv4(tcp.inside, tcp.remote).tcp(tcp.iport, tcp.rport, kIsn, kRemoteIsn, flags).payload(5);
                return frame_only(b);
            },
            Drop, DropReason::TcpNotSyn, 0);
    }
    // UDP checksums that compute to zero must go out as 0xffff (0 would mean "no checksum").
    const Flow udp = default_flow(Proto::Udp);
    add("UDP outbound datagram whose translated checksum computes to 0 -> 0xffff", In,
        [udp](NatHarness& h) {
            const Flow f = establish(h, udp);
            auto b = from_inside(f);
            b.payload(zero_csum_payload(f.pub, f.pport, f.remote, f.rport, 40));
            Input in = expect_out(b, f);
            in.udp_csum = 0xffff;
            return in;
        },
        Fwd);
    add("UDP inbound reply whose translated checksum computes to 0 -> 0xffff", Out,
        [udp](NatHarness& h) {
            const Flow f = establish(h, udp);
            auto b = from_outside(f);
            b.payload(zero_csum_payload(f.remote, f.rport, f.inside, f.iport, 40));
            Input in = expect_in(b, f);
            in.udp_csum = 0xffff;
            return in;
        },
        Fwd);
    add("UDP outbound datagram sent with checksum 0xffff (computes to 0) is translated", In,
        [udp](NatHarness& h) {
            const Flow f = establish(h, udp);
            auto b = from_inside(f);
            b.payload(zero_csum_payload(f.inside, f.iport, f.remote, f.rport, 40));
            return expect_out(b, f);
        },
        Fwd);
    add("UDP inbound reply sent with checksum 0xffff (computes to 0) is translated", Out,
        [udp](NatHarness& h) {
            const Flow f = establish(h, udp);
            auto b = from_outside(f);
            b.payload(zero_csum_payload(f.remote, f.rport, f.pub, f.pport, 40));
            return expect_in(b, f);
        },
        Fwd);
    for (Proto p : kProtos) {
        const Flow f0 = default_flow(p);
        add(std::string(proto_name(p)) + " inbound reply padded to the 60-byte minimum frame", Out,
            [f0](NatHarness& h) {
                const Flow f = establish(h, f0);
                auto b = from_outside(f, f.proto == Proto::Tcp ? Kind::Open : Kind::Data);
                b.payload(f.proto == Proto::Tcp ? 0 : 2).pad_to(60);
                return expect_in(b, f);
            },
            Fwd);
    }

    const Flow echo = default_flow(Proto::Echo);
    add("ICMP inbound echo request to the identifier of a live session -> NoSession", Out,
        [echo](NatHarness& h) {
            const Flow f = establish(h, echo);
            PacketBuilder b;
            b.eth().ipv4(f.remote, f.pub).icmp_echo(ICMP_TYPE_ECHO_REQUEST, f.pport, 9).payload(kData);
            return frame_only(b);
        },
        Drop, DropReason::NoSession);
    add("ICMP outbound echo reply without a session -> NoSession, no session", In,
        [echo](NatHarness&) {
            PacketBuilder b;
            b.eth().ipv4(echo.inside, echo.remote).icmp_echo(ICMP_TYPE_ECHO_REPLY, echo.iport, 1).payload(kData);
            return frame_only(b);
        },
        Drop, DropReason::NoSession, 0);
    add("ICMP outbound echo request with identifier 0", In,
        [echo](NatHarness&) {
            Flow f = echo;
            f.iport = 0;
            return expect_new(from_inside(f, Kind::Open), f);
        },
        Fwd, DropReason::Count, 1);

    add("ARP from inside -> Punt", In, [](NatHarness&) { return Input{arp_frame()}; }, Verdict::Punt);
    add("ARP from outside -> Punt", Out, [](NatHarness&) { return Input{arp_frame()}; }, Verdict::Punt);
    return cases;
}

TEST(NatTranslate, SmokeUdpOutAndBack) {
    NatHarness h;
    auto o = h.out(PacketBuilder().eth().ipv4(ip("198.18.0.1"), ip("198.19.0.100")).udp(5000, 53).payload(10).build());
    ASSERT_EQ(o.result.verdict, Verdict::Forward);
    auto d = decode(o.frame);
    ASSERT_TRUE(d);
    EXPECT_TRUE(verify_checksums(o.frame).ok) << verify_checksums(o.frame).detail;
    EXPECT_TRUE(d->src == ip("198.19.0.10") || d->src == ip("198.19.0.11"));
    EXPECT_EQ(d->ttl, 63);
    auto back = h.in(PacketBuilder().eth().ipv4(ip("198.19.0.100"), d->src).udp(53, d->sport).payload(10).build());
    ASSERT_EQ(back.result.verdict, Verdict::Forward);
    auto b = decode(back.frame);
    EXPECT_EQ(b->dst, ip("198.18.0.1"));
    EXPECT_EQ(b->dport, 5000);
    EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
}

TEST(NatTranslate, Table) {
    const std::vector<Case> cases = translation_cases();
    ASSERT_GT(cases.size(), 100u);
    for (const Case& c : cases) run_case(c);
}

// Outside packets whose port (dst port, echo identifier) another worker owns are handed to it,
// untouched; owner = port % workers.
TEST(NatTranslate, HandoffTable) {
    std::vector<Case> cases;
    auto add = [&](std::string desc, std::function<Input(NatHarness&)> make, Verdict v, DropReason r,
                   uint16_t to) {
        Case c{std::move(desc), Side::Outside, std::move(make), v, r, 0};
        c.workers = 2;
        c.handoff_to = to;
        cases.push_back(std::move(c));
    };
    for (Proto p : kProtos) {
        const std::string n = proto_name(p);
        for (uint16_t port : {uint16_t{1025}, uint16_t{40001}, uint16_t{65535}}) {
            for (const char* pub : {"198.19.0.10", "198.19.0.11"}) {
                std::string d = n;
                d += " inbound to ";
                d += pub;
                d += ":";
                d += std::to_string(port);
                d += " (odd) on worker 0 of 2 -> Handoff to worker 1";
                add(d,
                    [p, port, pub](NatHarness&) {
                        Flow f = default_flow(p);
                        f.pub = ip(pub);
                        f.pport = port;
                        return frame_only(from_outside(f, Kind::Open));
                    },
                    Verdict::Handoff, DropReason::Count, 1);
            }
        }
        add(n + " inbound to an even port without a session on worker 0 of 2 -> NoSession",
            [p](NatHarness&) {
                Flow f = default_flow(p);
                f.pub = ip("198.19.0.10");
                f.pport = 40000;
                return frame_only(from_outside(f, Kind::Open));
            },
            Verdict::Drop, DropReason::NoSession, 0);
        add(n + " reply to a flow worker 0 opened is forwarded (it chose an even port)",
            [p](NatHarness& h) {
                const Flow f = establish(h, default_flow(p));
                EXPECT_EQ(f.pport % 2, 0) << "worker 0 of 2 allocated an odd port " << f.pport;
                return expect_in(from_outside(f), f);
            },
            Verdict::Forward, DropReason::Count, 0);
    }
    for (const Case& c : cases) run_case(c);
}

// Worker 0 of 2 hands out only ports it owns, for every protocol and many flows.
TEST(NatTranslate, WorkerAllocatesOnlyItsOwnPorts) {
    for (uint16_t worker : {uint16_t{0}, uint16_t{1}}) {
        NatHarness h({lab_pool()}, 2, worker);
        for (Proto p : kProtos) {
            for (uint16_t i = 0; i < 20; ++i) {
                Flow f = default_flow(p);
                f.iport = static_cast<uint16_t>(f.iport + i);
                f = open(h, f);
                EXPECT_EQ(f.pport % 2, worker) << proto_name(p) << " flow " << i << " got port " << f.pport;
            }
        }
    }
}

// Different inside hosts, same inside port, same remote: distinct public endpoints, and each
// reply reaches its own host.
TEST(NatTranslate, DistinctInsideHostsGetDistinctMappings) {
    for (Proto p : kProtos) {
        SCOPED_TRACE(proto_name(p));
        NatHarness h;
        std::vector<Flow> flows;
        std::set<std::pair<uint32_t, uint16_t>> seen;
        for (int i = 1; i <= 40; ++i) {
            std::string a = "198.18.0.";
            a += std::to_string(i);
            Flow f = default_flow(p);
            f.inside = ip(a.c_str());
            f = establish(h, f);
            EXPECT_TRUE(seen.insert({f.pub, f.pport}).second)
                << ip_str(f.inside) << " got " << ip_str(f.pub) << ":" << f.pport << " which another host has";
            flows.push_back(f);
        }
        EXPECT_EQ(h.counters().sessions_created, 40u);
        for (const Flow& f : flows) {
            auto back = h.in(from_outside(f).build());
            ASSERT_EQ(vname(back.result.verdict), "Forward") << rname(back.result.reason);
            auto d = decode(back.frame);
            ASSERT_TRUE(d);
            EXPECT_EQ(ip_str(d->dst), ip_str(f.inside));
            EXPECT_EQ(d->dport, f.iport);
            EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
        }
    }
}

// Paired pooling: every session of one inside host uses the same public address, whatever the
// protocol or the remote.
TEST(NatTranslate, PairedPoolingOneAddressPerHost) {
    NatHarness h;
    std::map<uint32_t, std::set<uint32_t>> addrs_of_host;
    std::set<uint32_t> used;
    const char* remotes[] = {"198.19.0.100", "198.19.0.101", "198.19.0.102", "198.19.1.7"};
    for (int host = 1; host <= 16; ++host) {
        std::string a = "198.18.0.";
        a += std::to_string(host * 3);
        for (Proto p : kProtos) {
            for (int r = 0; r < 4; ++r) {
                // Udp and Udp0 share the UDP port space: give each protocol its own ports.
                Flow f = flow(p, a.c_str(), static_cast<uint16_t>(20000 + 10 * static_cast<int>(p) + r), remotes[r], 443);
                f = open(h, f);
                addrs_of_host[f.inside].insert(f.pub);
                used.insert(f.pub);
            }
        }
    }
    EXPECT_EQ(h.counters().sessions_created, 16u * 4u * 4u);
    for (const auto& [host, addrs] : addrs_of_host) {
        EXPECT_EQ(addrs.size(), 1u) << ip_str(host) << " uses " << addrs.size() << " public addresses";
        for (uint32_t a : addrs) EXPECT_TRUE(is_pool_address(a)) << ip_str(a);
    }
}

// Endpoint-dependent mapping: the same inside host:port towards two remotes; both translate and
// each reply returns to the one inside flow from the remote it came from.
TEST(NatTranslate, SameInsidePortToTwoRemotes) {
    for (Proto p : kProtos) {
        SCOPED_TRACE(proto_name(p));
        NatHarness h;
        Flow a = establish(h, flow(p, "198.18.0.1", 5000, "198.19.0.100", 53));
        Flow b = establish(h, flow(p, "198.18.0.1", 5000, "198.19.0.101", 53));
        ASSERT_FALSE(HasFailure());
        EXPECT_EQ(ip_str(a.pub), ip_str(b.pub)) << "paired pooling";
        EXPECT_EQ(h.counters().sessions_created, 2u);
        for (const Flow& f : {a, b}) {
            auto back = h.in(from_outside(f).build());
            ASSERT_EQ(vname(back.result.verdict), "Forward") << rname(back.result.reason);
            auto d = decode(back.frame);
            ASSERT_TRUE(d);
            EXPECT_EQ(ip_str(d->src), ip_str(f.remote));
            EXPECT_EQ(ip_str(d->dst), "198.18.0.1");
            EXPECT_EQ(d->dport, 5000);
            EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
        }
        if (a.pport != b.pport) {
            // Remote B at A's public endpoint: no session for that pair.
            Flow cross = b;
            cross.pport = a.pport;
            auto x = h.in(from_outside(cross).build());
            EXPECT_EQ(vname(x.result.verdict), "Drop");
            EXPECT_EQ(rname(x.result.reason), "no_session");
        }
        // Outbound again on each flow keeps its own public port.
        for (const Flow& f : {a, b}) {
            auto o = h.out(from_inside(f).build());
            ASSERT_EQ(vname(o.result.verdict), "Forward");
            auto d = decode(o.frame);
            ASSERT_TRUE(d);
            EXPECT_EQ(d->sport, f.pport);
            EXPECT_EQ(ip_str(d->dst), ip_str(f.remote));
        }
    }
}

// With a pool of one address and two ports, public ports are shared between remotes only as
// distinct (port, remote) pairs; once every pair toward a remote is held, a new flow to it fails.
TEST(NatTranslate, PortSharedOnlyAcrossDistinctRemotes) {
    PoolSpec tiny;
    tiny.name = "lab";
    tiny.addresses = "198.19.0.10";
    tiny.ports = "2000-2001";
    for (Proto p : {Proto::Tcp, Proto::Udp, Proto::Echo}) {
        SCOPED_TRACE(proto_name(p));
        NatHarness h({tiny});
        // Echo: "remote" is the address only (the remote port is 0 in the key).
        const char* ra = "198.19.0.100";
        const char* rb = "198.19.0.101";
        std::vector<Flow> flows;
        for (uint16_t i = 0; i < 2; ++i) flows.push_back(establish(h, flow(p, "198.18.0.1", 5000 + i, ra, 53)));
        for (uint16_t i = 2; i < 4; ++i) flows.push_back(establish(h, flow(p, "198.18.0.1", 5000 + i, rb, 53)));
        ASSERT_FALSE(HasFailure());
        std::set<std::pair<uint16_t, uint32_t>> pairs;
        for (const Flow& f : flows) {
            EXPECT_EQ(ip_str(f.pub), "198.19.0.10");
            EXPECT_TRUE(f.pport == 2000 || f.pport == 2001) << f.pport;
            EXPECT_TRUE(pairs.insert({f.pport, f.remote}).second) << "(port, remote) pair given twice";
        }
        // Every pair toward remote A is held: a third flow to A has nowhere to go.
        auto full = h.out(from_inside(flow(p, "198.18.0.3", 6000, ra, 53), Kind::Open).build());
        EXPECT_EQ(vname(full.result.verdict), "Drop");
        EXPECT_EQ(rname(full.result.reason), "ports_exhausted");
        // Every reply reaches its own inside flow.
        for (const Flow& f : flows) {
            auto back = h.in(from_outside(f).build());
            ASSERT_EQ(vname(back.result.verdict), "Forward") << rname(back.result.reason);
            auto d = decode(back.frame);
            ASSERT_TRUE(d);
            EXPECT_EQ(ip_str(d->dst), ip_str(f.inside));
            EXPECT_EQ(d->dport, f.iport);
            EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
        }
        EXPECT_EQ(h.counters().sessions_created, 4u);
    }
}

// ---------------------------------------------------------------------------
// Bursts: one process() call over many frames gives what one-by-one processing gives.
// ---------------------------------------------------------------------------

struct BurstItem {
    std::string description;
    std::vector<uint8_t> frame;
    Verdict verdict;
    DropReason reason = DropReason::Count;
};

std::vector<uint8_t> truncated(std::vector<uint8_t> f, size_t n) {
    f.resize(n);
    return f;
}

// Both harnesses get the same history, so (same seed) the same ports: compare whole frames.
void check_burst_same_as_single(NatHarness& single, NatHarness& burst, Side side,
                                const std::vector<BurstItem>& items, std::vector<std::vector<uint8_t>>* single_out) {
    std::vector<std::vector<uint8_t>> frames;
    std::vector<Frame> fv;
    for (const BurstItem& it : items) frames.push_back(it.frame);
    for (auto& f : frames) fv.push_back(Frame{f.data(), static_cast<uint32_t>(f.size())});
    std::vector<FrameResult> results(items.size());
    burst.worker().process(side, fv.data(), results.data(), static_cast<uint32_t>(fv.size()), 2000);

    for (size_t i = 0; i < items.size(); ++i) {
        std::string t = "#";
        t += std::to_string(i);
        t += " ";
        t += items[i].description;
        SCOPED_TRACE(t);
        const NatOutcome one = single.run(side, items[i].frame, 2000);
        EXPECT_EQ(vname(one.result.verdict), vname(items[i].verdict)) << rname(one.result.reason);
        EXPECT_EQ(rname(one.result.reason), rname(items[i].reason));
        EXPECT_EQ(vname(results[i].verdict), vname(one.result.verdict));
        EXPECT_EQ(rname(results[i].reason), rname(one.result.reason));
        EXPECT_EQ(results[i].worker, one.result.worker);
        EXPECT_EQ(results[i].l3_off, one.result.l3_off);
        EXPECT_EQ(frames[i], one.frame) << "burst output differs from one-by-one output";
        if (one.result.verdict == Verdict::Forward) {
            EXPECT_TRUE(verify_checksums(frames[i]).ok) << verify_checksums(frames[i]).detail;
        }
        if (single_out) single_out->push_back(one.frame);
    }
    EXPECT_EQ(burst.counters().sessions_created, single.counters().sessions_created);
    EXPECT_EQ(burst.counters().forwarded[static_cast<int>(side)], single.counters().forwarded[static_cast<int>(side)]);
    EXPECT_EQ(burst.counters().drops, single.counters().drops);
}

TEST(NatTranslate, BurstSameAsOneByOne) {
    NatHarness single;
    NatHarness burst;
    // Identical history in both: established flows the burst will hit.
    std::vector<Flow> live;
    for (Proto p : kProtos) {
        for (uint16_t i = 0; i < 2; ++i) {
            Flow f = default_flow(p);
            f.iport = static_cast<uint16_t>(f.iport + 100 + i);
            const Flow a = establish(single, f);
            const Flow b = establish(burst, f);
            ASSERT_EQ(a.pport, b.pport) << "same seed, same history: same port";
            ASSERT_EQ(a.pub, b.pub);
            live.push_back(a);
        }
    }
    const uint64_t created_before = single.counters().sessions_created;

    auto new_flow = [](Proto p, int i) {
        std::string a = "198.18.0.";
        a += std::to_string(50 + i);
        return flow(p, a.c_str(), static_cast<uint16_t>(30000 + i), "198.19.0.120", 8080);
    };
    const Flow n0 = new_flow(Proto::Udp, 0), n1 = new_flow(Proto::Tcp, 1), n2 = new_flow(Proto::Echo, 2),
               n3 = new_flow(Proto::Udp0, 3), pair1 = new_flow(Proto::Udp, 4), pair2 = new_flow(Proto::Tcp, 5),
               edge = new_flow(Proto::Udp, 6);

    auto F = Verdict::Forward;
    auto D = Verdict::Drop;
    std::vector<BurstItem> out;
    auto add = [&](std::string d, std::vector<uint8_t> f, Verdict v, DropReason r = DropReason::Count) {
        out.push_back(BurstItem{std::move(d), std::move(f), v, r});
    };
    add("new UDP flow", from_inside(n0, Kind::Open).build(), F);
    add("hit UDP", from_inside(live[2]).build(), F);
    add("garbage: 10 bytes", truncated(from_inside(n0).build(), 10), D, DropReason::FrameTooShort);
    add("new TCP SYN", from_inside(n1, Kind::Open).build(), F);
    add("ARP", arp_frame(), Verdict::Punt);
    add("new UDP flow, first of a pair", from_inside(pair1, Kind::Open).build(), F);
    add("hit TCP data", from_inside(live[0]).build(), F);
    {
        Flow f = n0;
        f.inside = ip("198.18.1.5");
        add("no rule", from_inside(f, Kind::Open).build(), D, DropReason::NoRule);
    }
    add("same new UDP flow, second of the pair", from_inside(pair1).build(), F);
    {
        PacketBuilder b;
        b.eth().ipv4(n1.inside, n1.remote).tcp(n1.iport + 1, n1.rport, 1, 1, TCP_ACK);
        add("TCP ACK without session", b.build(), D, DropReason::TcpNotSyn);
    }
    {
        auto b = from_inside(n2, Kind::Open);
        b.ttl(1);
        add("TTL 1 new flow", b.build(), Verdict::TtlExceeded, DropReason::TtlExpired);
    }
    {
        auto b = from_inside(n3, Kind::Open);
        b.ip_checksum_override(0x1234);
        add("bad IP checksum", b.build(), D, DropReason::Ipv4BadChecksum);
    }
    add("new echo flow", from_inside(n2, Kind::Open).build(), F);
    add("hit echo", from_inside(live[6]).build(), F);
    {
        PacketBuilder b;
        b.eth().ipv4(n0.inside, n0.remote).ip_proto(47).payload(24);
        add("GRE", b.build(), D, DropReason::UnsupportedProtocol);
    }
    {
        auto b = from_inside(n3, Kind::Open);
        b.frag(0, true);
        // More fragments follow, but this one's payload is not a multiple of 8 bytes.
        add("first fragment, bad length", b.build(), D, DropReason::FragmentMalformed);
    }
    add("new TCP SYN, first of a pair", from_inside(pair2, Kind::Open).build(), F);
    add("new UDP0 flow", from_inside(n3, Kind::Open).build(), F);
    add("same TCP SYN retransmitted in the same burst", from_inside(pair2, Kind::Open).build(), F);
    add("hit UDP0", from_inside(live[4]).build(), F);
    add("hit second UDP", from_inside(live[3]).build(), F);
    add("again the first UDP pair flow", from_inside(pair1).build(), F);
    {
        // The inside host reports a reply of a flow created earlier in this very burst.
        PacketBuilder quoted;
        quoted.ipv4(n0.remote, n0.inside).udp(n0.rport, n0.iport).payload(12);
        PacketBuilder e;
        e.eth().ipv4(n0.inside, n0.remote).icmp_error(ICMP_TYPE_DEST_UNREACH, 3, quoted.build_ip());
        add("ICMP port unreachable from inside about the UDP flow new in this burst", e.build(), F);
        PacketBuilder nobody;
        nobody.ipv4(n0.remote, n0.inside).udp(n0.rport, static_cast<uint16_t>(n0.iport + 7)).payload(12);
        PacketBuilder e2;
        e2.eth().ipv4(n0.inside, n0.remote).icmp_error(ICMP_TYPE_DEST_UNREACH, 3, nobody.build_ip());
        add("ICMP error from inside about no session", e2.build(), D, DropReason::IcmpErrorNoSession);
    }
    // Fill up to index 30 with new flows from distinct hosts, then a pair across the chunk edge.
    for (int i = 0; out.size() < 31; ++i) {
        add("filler new flow", from_inside(new_flow(kProtos[i % 4], 10 + i), Kind::Open).build(), F);
    }
    add("new UDP flow at index 31 (end of the first chunk)", from_inside(edge, Kind::Open).build(), F);
    add("same UDP flow at index 32 (start of the second chunk)", from_inside(edge).build(), F);
    add("hit UDP in the second chunk", from_inside(live[2]).build(), F);
    add("again the new TCP flow", from_inside(n1, Kind::Open).build(), F);
    add("garbage: bad IP version", [&] {
        auto f = from_inside(n0).build();
        f[14] = 0x65;
        return f;
    }(), D, DropReason::Ipv4BadVersion);
    add("echo flow again", from_inside(n2).build(), F);
    add("no rule, again", [&] {
        Flow f = n2;
        f.inside = ip("198.18.3.3");
        return from_inside(f, Kind::Open).build();
    }(), D, DropReason::NoRule);
    add("last: new UDP flow", from_inside(new_flow(Proto::Udp, 40), Kind::Open).build(), F);
    ASSERT_GE(out.size(), 38u);

    std::vector<std::vector<uint8_t>> single_out;
    check_burst_same_as_single(single, burst, Side::Inside, out, &single_out);
    if (HasFailure()) return;

    // Both packets of a flow that was new in the burst left with one public endpoint, and one
    // session was created per new flow.
    auto src_of = [&](size_t i) {
        auto d = decode(single_out[i]);
        return d ? std::make_pair(d->src, d->sport) : std::make_pair(0u, uint16_t{0});
    };
    auto index_of = [&](const std::string& d) {
        for (size_t i = 0; i < out.size(); ++i)
            if (out[i].description == d) return i;
        ADD_FAILURE() << "no item " << d;
        return size_t{0};
    };
    EXPECT_EQ(src_of(index_of("new UDP flow, first of a pair")), src_of(index_of("same new UDP flow, second of the pair")));
    EXPECT_EQ(src_of(index_of("new UDP flow, first of a pair")), src_of(index_of("again the first UDP pair flow")));
    EXPECT_EQ(src_of(index_of("new TCP SYN, first of a pair")), src_of(index_of("same TCP SYN retransmitted in the same burst")));
    EXPECT_EQ(src_of(31), src_of(32));
    EXPECT_EQ(src_of(index_of("new TCP SYN")), src_of(index_of("again the new TCP flow")));
    EXPECT_EQ(src_of(index_of("new echo flow")), src_of(index_of("echo flow again")));
    EXPECT_EQ(src_of(index_of("new UDP flow")).first,
              src_of(index_of("ICMP port unreachable from inside about the UDP flow new in this burst")).first);
    {
        auto e = decode(single_out[index_of("ICMP port unreachable from inside about the UDP flow new in this burst")]);
        ASSERT_TRUE(e && e->has_inner);
        EXPECT_EQ(e->inner_dport, src_of(index_of("new UDP flow")).second);
    }
    size_t new_flows = 0;
    for (const BurstItem& it : out)
        if (it.description.rfind("new ", 0) == 0 || it.description == "filler new flow" ||
            it.description.rfind("last: new", 0) == 0)
            ++new_flows;
    EXPECT_EQ(single.counters().sessions_created - created_before, new_flows);

    // Outside burst: replies to flows created in the inside burst and to older ones, with
    // duplicates, garbage and misses.
    auto learn = [&](Flow f, size_t i) {
        auto d = decode(single_out[i]);
        if (d) {
            f.pub = d->src;
            f.pport = d->sport;
        }
        return f;
    };
    const Flow r0 = learn(n0, index_of("new UDP flow"));
    const Flow r1 = learn(n1, index_of("new TCP SYN"));
    const Flow r2 = learn(n2, index_of("new echo flow"));
    const Flow r3 = learn(n3, index_of("new UDP0 flow"));
    const Flow rp = learn(pair1, index_of("new UDP flow, first of a pair"));
    const Flow re = learn(edge, 31);

    std::vector<BurstItem> in;
    auto addi = [&](std::string d, std::vector<uint8_t> f, Verdict v, DropReason r = DropReason::Count) {
        in.push_back(BurstItem{std::move(d), std::move(f), v, r});
    };
    addi("reply new UDP", from_outside(r0).build(), F);
    addi("reply new TCP SYN/ACK", from_outside(r1, Kind::Open).build(), F);
    addi("reply new echo", from_outside(r2).build(), F);
    addi("reply new UDP0", from_outside(r3).build(), F);
    addi("reply pair flow", from_outside(rp).build(), F);
    addi("reply pair flow again", from_outside(rp).build(), F);
    addi("reply edge flow", from_outside(re).build(), F);
    for (size_t i = 0; i < live.size(); ++i) addi("reply old flow", from_outside(live[i]).build(), F);
    {
        Flow f = r0;
        f.rport = static_cast<uint16_t>(f.rport + 1);
        addi("reply from wrong remote port", from_outside(f).build(), D, DropReason::NoSession);
    }
    {
        Flow f = r0;
        f.remote = ip("198.19.0.130");
        addi("unsolicited UDP from another remote", from_outside(f).build(), D, DropReason::NoSession);
    }
    {
        PacketBuilder b;
        b.eth().ipv4(ip("198.19.0.130"), r1.pub).tcp(r1.rport, r1.pport, 7, 0, TCP_SYN);
        addi("unsolicited SYN from another remote", b.build(), D, DropReason::NoSession);
    }
    {
        PacketBuilder b;
        b.eth().ipv4(r2.remote, r2.pub).icmp_echo(ICMP_TYPE_ECHO_REQUEST, r2.pport, 3);
        addi("echo request from outside", b.build(), D, DropReason::NoSession);
    }
    addi("garbage: 20 bytes", truncated(from_outside(r0).build(), 20), D, DropReason::Ipv4TooShort);
    {
        PacketBuilder quoted;
        quoted.ipv4(r0.pub, r0.remote).udp(r0.pport, r0.rport).payload(kData);
        PacketBuilder e;
        e.eth().ipv4(ip("198.19.0.254"), r0.pub).icmp_error(ICMP_TYPE_TIME_EXCEEDED, 0, quoted.build_ip());
        addi("ICMP time exceeded about the new UDP flow", e.build(), F);
        PacketBuilder q2;
        q2.ipv4(r0.pub, ip("198.19.0.140")).udp(r0.pport, r0.rport).payload(kData);
        PacketBuilder e2;
        e2.eth().ipv4(ip("198.19.0.254"), r0.pub).icmp_error(ICMP_TYPE_TIME_EXCEEDED, 0, q2.build_ip());
        addi("ICMP time exceeded about no session", e2.build(), D, DropReason::IcmpErrorNoSession);
    }
    addi("ARP", arp_frame(), Verdict::Punt);
    {
        auto b = from_outside(rp);
        b.ttl(1);
        addi("TTL 1 reply", b.build(), Verdict::TtlExceeded, DropReason::TtlExpired);
    }
    for (int i = 0; in.size() < 36; ++i) addi("reply pair flow, repeated", from_outside(rp).build(), F);
    check_burst_same_as_single(single, burst, Side::Outside, in, nullptr);
}

}  // namespace
}  // namespace snatgw::test

namespace snatgw::test {
namespace {

// An echo reply translated back to identifier 0, sequence 0, no data: every byte of the ICMP
// message is zero but the checksum, which must then be 0xffff (0x0000 does not verify).
TEST(NatTranslateIcmpZero, AllZeroEchoReplyGetsChecksumFfff) {
    NatHarness h;
    auto o = h.out(PacketBuilder().eth().ipv4(ip("198.18.0.7"), ip("198.19.0.100")).icmp_echo(8, 0, 0).build());
    ASSERT_EQ(o.result.verdict, Verdict::Forward);
    const auto d = decode(o.frame);
    ASSERT_TRUE(d);
    auto back = h.in(PacketBuilder().eth().ipv4(ip("198.19.0.100"), d->src).icmp_echo(0, d->icmp_id, 0).build());
    ASSERT_EQ(back.result.verdict, Verdict::Forward);
    const auto b = decode(back.frame);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->icmp_id, 0);
    EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
    EXPECT_EQ(b->l4_checksum, 0xffff);
}

}  // namespace
}  // namespace snatgw::test
