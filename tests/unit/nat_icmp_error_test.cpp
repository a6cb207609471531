// NatIcmpError*: ICMP errors (embedded TCP/UDP/echo, full or IP+8 bytes) translated both ways, no-session, handoff, timers.
//
// Table-driven like nat_translate_test.cpp. For a forwarded error the runner recomputes every
// checksum (outer IP, ICMP, embedded IP header, embedded TCP/UDP when complete), checks the
// outer and embedded endpoints, and checks that the embedded packet turned back into exactly
// the packet the far end of the flow saw before translation: its L4 bytes (ports, identifier,
// checksum, rest) equal the original's and its IP header differs only in TTL and checksum.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nat_fixture.h"

namespace snatgw::test {
namespace {

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

int reported_parts() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
}

// ---------------------------------------------------------------------------
// Flows (inside host 198.18.0.1 unless said otherwise)
// ---------------------------------------------------------------------------

enum class Proto { Tcp, Udp, Udp0, Echo };

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
constexpr uint32_t kIsn = 1000;
constexpr uint32_t kRemoteIsn = 50000;

struct Flow {
    Proto proto = Proto::Udp;
    uint32_t inside = 0;
    uint16_t iport = 0;  // ICMP: identifier
    uint32_t remote = 0;
    uint16_t rport = 0;
    uint32_t pub = 0;
    uint16_t pport = 0;
};

Flow default_flow(Proto p) {
    Flow f;
    f.proto = p;
    f.inside = ip("198.18.0.1");
    f.iport = p == Proto::Echo ? 0x4d2 : 40000;
    f.remote = ip("198.19.0.100");
    f.rport = p == Proto::Tcp ? 80 : p == Proto::Echo ? 0 : 53;
    return f;
}

// First packet from inside (TCP: SYN with MSS; UDP: 100-byte datagram; echo request).
PacketBuilder from_inside(const Flow& f) {
    PacketBuilder b;
    b.eth().ipv4(f.inside, f.remote).df();
    switch (f.proto) {
        case Proto::Tcp: b.tcp(f.iport, f.rport, kIsn, 0, TCP_SYN).tcp_option_mss(1460); break;
        case Proto::Udp: b.udp(f.iport, f.rport).payload(100); break;
        case Proto::Udp0: b.udp(f.iport, f.rport).udp_zero_checksum().payload(100); break;
        case Proto::Echo: b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, f.iport, 7).payload(56); break;
    }
    return b;
}

// Reply from the remote (TCP: SYN/ACK; UDP: datagram; echo reply).
PacketBuilder from_outside(const Flow& f) {
    PacketBuilder b;
    b.eth().ipv4(f.remote, f.pub);
    switch (f.proto) {
        case Proto::Tcp: b.tcp(f.rport, f.pport, kRemoteIsn, kIsn + 1, TCP_SYN | TCP_ACK).tcp_option_mss(1400); break;
        case Proto::Udp: b.udp(f.rport, f.pport).payload(301); break;
        case Proto::Udp0: b.udp(f.rport, f.pport).udp_zero_checksum().payload(301); break;
        case Proto::Echo: b.icmp_echo(ICMP_TYPE_ECHO_REPLY, f.pport, 7).payload(56); break;
    }
    return b;
}

// The IPv4 packet inside an Ethernet frame (from its header to its total length).
std::vector<uint8_t> ip_packet(const std::vector<uint8_t>& frame) {
    auto d = decode(frame);
    if (!d) {
        ADD_FAILURE() << "frame does not decode";
        return {};
    }
    return std::vector<uint8_t>(frame.begin() + static_cast<std::ptrdiff_t>(d->l3_offset),
                                frame.begin() + static_cast<std::ptrdiff_t>(d->l3_offset + d->ip_total_len));
}

// An IP packet cut to its header + n bytes of L4 (the total length field keeps its value).
std::vector<uint8_t> cut(std::vector<uint8_t> pkt, size_t l4_bytes) {
    const size_t ihl = static_cast<size_t>(pkt.at(0) & 0x0f) * 4;
    if (pkt.size() > ihl + l4_bytes) pkt.resize(ihl + l4_bytes);
    return pkt;
}

// Outbound packet of the flow through the engine: the flow learns its public endpoint.
// Returns (what the inside host sent, what left the NAT) as IP packets.
struct Sent {
    std::vector<uint8_t> original;    // IP packet before translation
    std::vector<uint8_t> translated;  // IP packet after translation
};

Sent send_out(NatHarness& h, Flow& f, PacketBuilder b, uint32_t now_ms = 1000) {
    const std::vector<uint8_t> frame = b.build();
    auto o = h.out(frame, now_ms);
    EXPECT_EQ(vname(o.result.verdict), "Forward") << "opening flow: " << rname(o.result.reason);
    auto d = decode(o.frame);
    if (o.result.verdict != Verdict::Forward || !d) {
        ADD_FAILURE() << "flow not opened";
        return {};
    }
    f.pub = d->src;
    f.pport = d->sport;
    return Sent{ip_packet(frame), ip_packet(o.frame)};
}

// Inbound reply through the engine. Returns (what the remote sent, what reached the inside).
Sent send_in(NatHarness& h, const Flow& f, PacketBuilder b, uint32_t now_ms = 1000) {
    const std::vector<uint8_t> frame = b.build();
    auto o = h.in(frame, now_ms);
    EXPECT_EQ(vname(o.result.verdict), "Forward") << "reply: " << rname(o.result.reason);
    (void)f;
    if (o.result.verdict != Verdict::Forward) return {};
    return Sent{ip_packet(frame), ip_packet(o.frame)};
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
    // Forward only:
    uint32_t outer_src = 0, outer_dst = 0;
    uint32_t inner_src = 0, inner_dst = 0;
    uint16_t inner_sport = 0, inner_dport = 0;  // echo: both the identifier
    // The embedded packet must come out as this IP packet's prefix (except TTL and header
    // checksum): the packet before the NAT translated it.
    std::vector<uint8_t> original{};
};

struct Case {
    std::string description;
    Side side;
    std::function<Input(NatHarness&)> make;
    Verdict verdict;
    DropReason reason = DropReason::Count;
    uint16_t workers = 1;
    uint16_t handoff_to = 0;
};

// Offsets of bytes that changed but that translating an ICMP error arriving on `side` must
// leave alone.
std::string unexpected_changes(Side side, const Decoded& d, const std::vector<uint8_t>& a,
                               const std::vector<uint8_t>& b) {
    if (a.size() != b.size()) return "frame length changed";
    std::set<size_t> allowed;
    auto allow = [&](size_t off, size_t n) {
        for (size_t i = 0; i < n; ++i) allowed.insert(off + i);
    };
    const bool from_outside = side == Side::Outside;
    allow(d.l3_offset + 8, 1);                             // outer TTL
    allow(d.l3_offset + 10, 2);                            // outer header checksum
    allow(d.l3_offset + (from_outside ? 16 : 12), 4);      // outer dst / src
    allow(d.l4_offset + 2, 2);                             // ICMP checksum
    const size_t il3 = d.inner_l3_offset;
    const size_t ihl = static_cast<size_t>(a[il3] & 0x0f) * 4;
    const size_t il4 = il3 + ihl;
    allow(il3 + 10, 2);                                    // embedded header checksum
    allow(il3 + (from_outside ? 12 : 16), 4);              // embedded src / dst
    switch (d.inner_proto) {
        case PROTO_TCP:
            allow(il4 + (from_outside ? 0 : 2), 2);
            allow(il4 + 16, 2);
            break;
        case PROTO_UDP:
            allow(il4 + (from_outside ? 0 : 2), 2);
            allow(il4 + 6, 2);
            break;
        case PROTO_ICMP:
            allow(il4 + 2, 2);
            allow(il4 + 4, 2);
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

void check_forwarded(Side side, const Input& in, const std::vector<uint8_t>& out) {
    const ChecksumReport cr = verify_checksums(out);
    EXPECT_TRUE(cr.ok) << cr.detail;
    const auto din = decode(in.frame);
    const auto dout = decode(out);
    ASSERT_TRUE(din.has_value());
    ASSERT_TRUE(dout.has_value());
    ASSERT_TRUE(dout->has_inner);
    EXPECT_EQ(dout->ttl, din->ttl - 1);
    EXPECT_EQ(dout->icmp_type, din->icmp_type);
    EXPECT_EQ(dout->icmp_code, din->icmp_code);
    EXPECT_EQ(dout->icmp_mtu, din->icmp_mtu);
    EXPECT_EQ(ip_str(dout->src), ip_str(in.outer_src)) << "outer source";
    EXPECT_EQ(ip_str(dout->dst), ip_str(in.outer_dst)) << "outer destination";
    EXPECT_EQ(ip_str(dout->inner_src), ip_str(in.inner_src)) << "embedded source";
    EXPECT_EQ(ip_str(dout->inner_dst), ip_str(in.inner_dst)) << "embedded destination";
    EXPECT_EQ(dout->inner_sport, in.inner_sport) << "embedded source port / identifier";
    EXPECT_EQ(dout->inner_dport, in.inner_dport) << "embedded destination port / identifier";
    EXPECT_EQ(dout->inner_ttl, din->inner_ttl) << "the embedded TTL is quoted, not decremented";

    // The embedded packet is the original again.
    const size_t il3 = dout->inner_l3_offset;
    const size_t present = dout->l3_offset + dout->ip_total_len - il3;  // to the end of the error
    const std::vector<uint8_t> emb(out.begin() + static_cast<std::ptrdiff_t>(il3),
                                   out.begin() + static_cast<std::ptrdiff_t>(il3 + present));
    ASSERT_LE(emb.size(), in.original.size());
    std::string diff;
    for (size_t i = 0; i < emb.size(); ++i) {
        if (i == 8 || i == 10 || i == 11) continue;  // TTL and header checksum differ
        if (emb[i] != in.original[i]) {
            diff += " ";
            diff += std::to_string(i);
        }
    }
    EXPECT_TRUE(diff.empty()) << "embedded packet differs from the untranslated original at offsets" << diff;

    if (dout->inner_proto == PROTO_UDP) {
        const size_t ihl = static_cast<size_t>(emb[0] & 0x0f) * 4;
        const uint16_t before = detail::rd16(&in.original[ihl + 6]);
        const uint16_t after = detail::rd16(&emb[ihl + 6]);
        if (before == 0) {
            EXPECT_EQ(after, 0) << "embedded zero UDP checksum must stay zero";
        } else {
            EXPECT_NE(after, 0) << "embedded UDP checksum must not become zero";
        }
    }
    const std::string bad = unexpected_changes(side, *din, in.frame, out);
    EXPECT_TRUE(bad.empty()) << bad;
}

void run_case(const Case& c) {
    SCOPED_TRACE(c.description);
    NatHarness h({lab_pool()}, c.workers, 0);
    const int parts_before = reported_parts();
    const Input in = c.make(h);
    if (reported_parts() != parts_before) return;  // setup failed
    const WorkerCounters before = h.counters();
    const NatOutcome o = h.run(c.side, in.frame);
    const WorkerCounters& after = h.counters();
    const int side = static_cast<int>(c.side);

    EXPECT_EQ(vname(o.result.verdict), vname(c.verdict)) << "reason " << rname(o.result.reason);
    EXPECT_EQ(after.sessions_created, before.sessions_created) << "an ICMP error never creates a session";
    EXPECT_EQ(after.sessions_reopened, before.sessions_reopened);
    EXPECT_EQ(after.tcp_state, before.tcp_state) << "an ICMP error never changes TCP state";
    EXPECT_EQ(after.udp_sessions, before.udp_sessions);
    EXPECT_EQ(after.icmp_sessions, before.icmp_sessions);
    if (c.verdict == Verdict::Forward) {
        EXPECT_EQ(after.forwarded[side] - before.forwarded[side], 1u);
        EXPECT_EQ(after.drop_total(), before.drop_total());
        if (o.result.verdict == Verdict::Forward) check_forwarded(c.side, in, o.frame);
        return;
    }
    EXPECT_EQ(after.forwarded[side], before.forwarded[side]);
    EXPECT_EQ(o.frame, in.frame) << "a frame that is not forwarded must be left as it arrived";
    if (c.verdict == Verdict::Handoff) {
        EXPECT_EQ(o.result.worker, c.handoff_to);
        EXPECT_EQ(after.handoffs - before.handoffs, 1u);
        EXPECT_EQ(after.drop_total(), before.drop_total());
    } else {
        EXPECT_EQ(rname(o.result.reason), rname(c.reason));
        if (c.reason < DropReason::Count) {
            const auto r = static_cast<size_t>(c.reason);
            EXPECT_EQ(after.drops[r] - before.drops[r], 1u) << "drop counter of " << rname(c.reason);
        }
    }
}

// ---------------------------------------------------------------------------
// Error kinds
// ---------------------------------------------------------------------------

struct ErrorKind {
    const char* name;
    uint8_t type, code;
    uint16_t mtu;
};

constexpr ErrorKind kPortUnreachable{"port unreachable", ICMP_TYPE_DEST_UNREACH, 3, 0};
constexpr ErrorKind kFragNeeded{"frag needed (MTU 1400)", ICMP_TYPE_DEST_UNREACH, ICMP_CODE_FRAG_NEEDED, 1400};
constexpr ErrorKind kHostUnreachable{"host unreachable", ICMP_TYPE_DEST_UNREACH, 1, 0};
constexpr ErrorKind kTimeExceeded{"time exceeded", ICMP_TYPE_TIME_EXCEEDED, 0, 0};
constexpr ErrorKind kParamProblem{"parameter problem", 12, 0, 0};
constexpr ErrorKind kKinds[] = {kPortUnreachable, kFragNeeded, kHostUnreachable, kTimeExceeded, kParamProblem};

PacketBuilder icmp_error(const ErrorKind& k, uint32_t src, uint32_t dst, const std::vector<uint8_t>& embedded) {
    PacketBuilder b;
    b.eth().ipv4(src, dst).icmp_error(k.type, k.code, embedded);
    if (k.mtu != 0) b.mtu(k.mtu);
    return b;
}

// How much of the offending packet the error quotes.
enum class Quote { Full, Ip8, Ip28 };
const char* quote_name(Quote q) {
    switch (q) {
        case Quote::Full: return "whole packet";
        case Quote::Ip8: return "IP header + 8 bytes";
        case Quote::Ip28: return "IP header + 28 bytes";
    }
    return "?";
}
std::vector<uint8_t> quote(const std::vector<uint8_t>& pkt, Quote q) {
    switch (q) {
        case Quote::Full: return pkt;
        case Quote::Ip8: return cut(pkt, 8);
        case Quote::Ip28: return cut(pkt, 28);
    }
    return pkt;
}

struct Variant {
    const char* name;
    bool outer_vlan = false;
    size_t inner_options = 0;  // IP options on the offending packet
    size_t outer_options = 0;  // IP options on the error itself
};
constexpr Variant kVariants[] = {{"plain"}, {"VLAN-tagged error", true, 0, 0},
                                 {"offending packet with 12 bytes of IP options", false, 12, 0},
                                 {"error with 8 bytes of IP options, VLAN", true, 0, 8}};

std::string describe(const char* dir, const ErrorKind& k, Proto p, Quote q, const char* variant) {
    std::string d = dir;
    d += ": ";
    d += k.name;
    d += " about ";
    d += proto_name(p);
    d += ", quoting ";
    d += quote_name(q);
    d += ", ";
    d += variant;
    return d;
}

std::vector<Case> translation_cases() {
    std::vector<Case> cases;
    for (Proto p : kProtos) {
        for (const ErrorKind& k : kKinds) {
            for (Quote q : {Quote::Full, Quote::Ip8, Quote::Ip28}) {
                for (const Variant& var : kVariants) {
                    // Only the full matrix for the plain variant; the others once per protocol.
                    if (std::string(var.name) != "plain" && (q != Quote::Full || k.type != ICMP_TYPE_DEST_UNREACH || k.code != 3))
                        continue;
                    // From outside: a router on the path (or the remote itself for port
                    // unreachable) reports a packet we sent out.
                    cases.push_back(Case{
                        describe("from outside", k, p, q, var.name), Side::Outside,
                        [p, k, q, var](NatHarness& h) {
                            Flow f = default_flow(p);
                            PacketBuilder first = from_inside(f);
                            if (var.inner_options) first.ip_options(var.inner_options);
                            const Sent s = send_out(h, f, first);
                            const uint32_t reporter = k.code == 3 && k.type == ICMP_TYPE_DEST_UNREACH
                                                          ? f.remote
                                                          : ip("198.19.0.254");
                            PacketBuilder e = icmp_error(k, reporter, f.pub, quote(s.translated, q));
                            if (var.outer_vlan) e.vlan(300);
                            if (var.outer_options) e.ip_options(var.outer_options);
                            Input in;
                            in.frame = e.build();
                            in.outer_src = reporter;
                            in.outer_dst = f.inside;
                            in.inner_src = f.inside;
                            in.inner_dst = f.remote;
                            in.inner_sport = f.iport;
                            in.inner_dport = p == Proto::Echo ? f.iport : f.rport;
                            in.original = s.original;
                            return in;
                        },
                        Verdict::Forward});
                    // From inside: the inside host reports a reply it received.
                    cases.push_back(Case{
                        describe("from inside", k, p, q, var.name), Side::Inside,
                        [p, k, q, var](NatHarness& h) {
                            Flow f = default_flow(p);
                            send_out(h, f, from_inside(f));
                            PacketBuilder reply = from_outside(f);
                            if (var.inner_options) reply.ip_options(var.inner_options);
                            const Sent r = send_in(h, f, reply);
                            PacketBuilder e = icmp_error(k, f.inside, f.remote, quote(r.translated, q));
                            if (var.outer_vlan) e.vlan(300);
                            if (var.outer_options) e.ip_options(var.outer_options);
                            Input in;
                            in.frame = e.build();
                            in.outer_src = f.pub;
                            in.outer_dst = f.remote;
                            in.inner_src = f.remote;
                            in.inner_dst = f.pub;
                            in.inner_sport = p == Proto::Echo ? f.pport : f.rport;
                            in.inner_dport = f.pport;
                            in.original = r.original;
                            return in;
                        },
                        Verdict::Forward});
                }
            }
        }
    }
    // Quoted UDP datagrams whose original checksum computes to 0 (sent as 0xffff): translating
    // the quote back must give 0xffff again, not 0 ("no checksum").
    for (Quote q : {Quote::Full, Quote::Ip8}) {
        std::string d = "from outside: port unreachable quoting (";
        d += quote_name(q);
        d += ") a UDP datagram whose checksum computes to 0";
        cases.push_back(Case{d, Side::Outside,
                             [q](NatHarness& h) {
                                 Flow f = default_flow(Proto::Udp);
                                 PacketBuilder first = from_inside(f);
                                 first.payload(zero_csum_payload(f.inside, f.iport, f.remote, f.rport, 64));
                                 const Sent s = send_out(h, f, first);
                                 EXPECT_EQ(detail::rd16(&s.original.at(20 + 6)), 0xffff) << "test setup";
                                 Input in;
                                 in.frame = icmp_error(kPortUnreachable, f.remote, f.pub, quote(s.translated, q)).build();
                                 in.outer_src = f.remote;
                                 in.outer_dst = f.inside;
                                 in.inner_src = f.inside;
                                 in.inner_dst = f.remote;
                                 in.inner_sport = f.iport;
                                 in.inner_dport = f.rport;
                                 in.original = s.original;
                                 return in;
                             },
                             Verdict::Forward});
        d = "from inside: port unreachable quoting (";
        d += quote_name(q);
        d += ") a UDP reply whose original checksum computes to 0";
        cases.push_back(Case{d, Side::Inside,
                             [q](NatHarness& h) {
                                 Flow f = default_flow(Proto::Udp);
                                 send_out(h, f, from_inside(f));
                                 PacketBuilder reply = from_outside(f);
                                 reply.payload(zero_csum_payload(f.remote, f.rport, f.pub, f.pport, 64));
                                 const Sent r = send_in(h, f, reply);
                                 Input in;
                                 in.frame = icmp_error(kPortUnreachable, f.inside, f.remote, quote(r.translated, q)).build();
                                 in.outer_src = f.pub;
                                 in.outer_dst = f.remote;
                                 in.inner_src = f.remote;
                                 in.inner_dst = f.pub;
                                 in.inner_sport = f.rport;
                                 in.inner_dport = f.pport;
                                 in.original = r.original;
                                 return in;
                             },
                             Verdict::Forward});
        d = "from inside: port unreachable quoting (";
        d += quote_name(q);
        d += ") a UDP reply whose translated checksum computed to 0";
        cases.push_back(Case{d, Side::Inside,
                             [q](NatHarness& h) {
                                 Flow f = default_flow(Proto::Udp);
                                 send_out(h, f, from_inside(f));
                                 PacketBuilder reply = from_outside(f);
                                 reply.payload(zero_csum_payload(f.remote, f.rport, f.inside, f.iport, 64));
                                 const Sent r = send_in(h, f, reply);
                                 Input in;
                                 in.frame = icmp_error(kPortUnreachable, f.inside, f.remote, quote(r.translated, q)).build();
                                 in.outer_src = f.pub;
                                 in.outer_dst = f.remote;
                                 in.inner_src = f.remote;
                                 in.inner_dst = f.pub;
                                 in.inner_sport = f.rport;
                                 in.inner_dport = f.pport;
                                 in.original = r.original;
                                 return in;
                             },
                             Verdict::Forward});
    }
    return cases;
}

TEST(NatIcmpError, TranslationTable) {
    const std::vector<Case> cases = translation_cases();
    ASSERT_GT(cases.size(), 100u);
    for (const Case& c : cases) run_case(c);
}

// Explicit spot check of the example in the spec, field by field: a frag-needed from a router
// about a full TCP segment we sent, and a port unreachable from the inside host about a UDP reply.
TEST(NatIcmpError, FragNeededAndPortUnreachableFieldByField) {
    NatHarness h;
    Flow t = default_flow(Proto::Tcp);
    PacketBuilder syn = from_inside(t);
    syn.payload(200);
    const Sent s = send_out(h, t, syn);
    ASSERT_FALSE(HasFailure());
    auto e = h.in(icmp_error(kFragNeeded, ip("198.19.0.254"), t.pub, s.translated).build());
    ASSERT_EQ(vname(e.result.verdict), "Forward") << rname(e.result.reason);
    auto d = decode(e.frame);
    ASSERT_TRUE(d && d->has_inner);
    EXPECT_TRUE(verify_checksums(e.frame).ok) << verify_checksums(e.frame).detail;
    EXPECT_EQ(ip_str(d->src), "198.19.0.254");
    EXPECT_EQ(ip_str(d->dst), "198.18.0.1");
    EXPECT_EQ(d->icmp_type, 3);
    EXPECT_EQ(d->icmp_code, 4);
    EXPECT_EQ(d->icmp_mtu, 1400);
    EXPECT_EQ(ip_str(d->inner_src), "198.18.0.1");
    EXPECT_EQ(d->inner_sport, 40000);
    EXPECT_EQ(ip_str(d->inner_dst), "198.19.0.100");
    EXPECT_EQ(d->inner_dport, 80);
    EXPECT_EQ(d->inner_seq, kIsn);

    Flow u = default_flow(Proto::Udp);
    send_out(h, u, from_inside(u));
    const Sent r = send_in(h, u, from_outside(u));
    ASSERT_FALSE(HasFailure());
    auto pu = h.out(icmp_error(kPortUnreachable, u.inside, u.remote, r.translated).build());
    ASSERT_EQ(vname(pu.result.verdict), "Forward") << rname(pu.result.reason);
    auto p = decode(pu.frame);
    ASSERT_TRUE(p && p->has_inner);
    EXPECT_TRUE(verify_checksums(pu.frame).ok) << verify_checksums(pu.frame).detail;
    EXPECT_EQ(ip_str(p->src), ip_str(u.pub));
    EXPECT_EQ(ip_str(p->dst), "198.19.0.100");
    EXPECT_EQ(ip_str(p->inner_src), "198.19.0.100");
    EXPECT_EQ(p->inner_sport, 53);
    EXPECT_EQ(ip_str(p->inner_dst), ip_str(u.pub));
    EXPECT_EQ(p->inner_dport, u.pport);
    EXPECT_EQ(h.counters().sessions_created, 2u);
}

// ---------------------------------------------------------------------------
// Errors that must not pass
// ---------------------------------------------------------------------------

// An embedded packet built by hand (not through the engine).
std::vector<uint8_t> embedded(Proto p, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
    PacketBuilder b;
    b.ipv4(src, dst);
    switch (p) {
        case Proto::Tcp: b.tcp(sport, dport, kIsn, 0, TCP_SYN); break;
        case Proto::Udp: b.udp(sport, dport).payload(20); break;
        case Proto::Udp0: b.udp(sport, dport).udp_zero_checksum().payload(20); break;
        case Proto::Echo: b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, sport, 1).payload(20); break;
    }
    return b.build_ip();
}

std::vector<Case> rejection_cases() {
    std::vector<Case> cases;
    auto add = [&](std::string d, Side side, std::function<Input(NatHarness&)> make, DropReason r) {
        cases.push_back(Case{std::move(d), side, std::move(make), Verdict::Drop, r});
    };
    const auto Out = Side::Outside;
    const auto In = Side::Inside;
    const auto NoSess = DropReason::IcmpErrorNoSession;
    for (Proto p : kProtos) {
        const std::string n = proto_name(p);
        const uint16_t rp = p == Proto::Echo ? 0 : 53;
        // --- from outside ---
        for (const char* pub : {"198.19.0.10", "198.19.0.11"}) {
            std::string d = "from outside: error about ";
            d += n;
            d += " from ";
            d += pub;
            d += " that no session sent -> IcmpErrorNoSession";
            add(d, Out,
                [p, pub, rp](NatHarness&) {
                    const auto e = embedded(p, ip(pub), 40000, ip("198.19.0.100"), rp);
                    return Input{icmp_error(kPortUnreachable, ip("198.19.0.100"), ip(pub), e).build()};
                },
                NoSess);
        }
        add("from outside: " + n + " error naming another remote than the session's -> IcmpErrorNoSession", Out,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const auto e = embedded(p, f.pub, f.pport, ip("198.19.0.101"), f.rport);
                return Input{icmp_error(kTimeExceeded, ip("198.19.0.254"), f.pub, e).build()};
            },
            NoSess);
        if (p != Proto::Echo) {
            add("from outside: " + n + " error naming another remote port -> IcmpErrorNoSession", Out,
                [p](NatHarness& h) {
                    Flow f = default_flow(p);
                    send_out(h, f, from_inside(f));
                    const auto e = embedded(p, f.pub, f.pport, f.remote, static_cast<uint16_t>(f.rport + 1));
                    return Input{icmp_error(kPortUnreachable, f.remote, f.pub, e).build()};
                },
                NoSess);
        }
        add("from outside: " + n + " error naming the session's port on the other pool address -> IcmpErrorNoSession",
            Out,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const uint32_t other = f.pub == ip("198.19.0.10") ? ip("198.19.0.11") : ip("198.19.0.10");
                const auto e = embedded(p, other, f.pport, f.remote, f.rport);
                return Input{icmp_error(kPortUnreachable, f.remote, other, e).build()};
            },
            NoSess);
        add("from outside: " + n + " error quoting the inside address (never seen outside) -> IcmpErrorNoSession", Out,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const auto e = embedded(p, f.inside, f.iport, f.remote, f.rport);
                return Input{icmp_error(kPortUnreachable, f.remote, f.pub, e).build()};
            },
            NoSess);
        // --- from inside ---
        add("from inside: " + n + " error about a reply no session carried -> IcmpErrorNoSession", In,
            [p, rp](NatHarness&) {
                const auto e = embedded(p, ip("198.19.0.100"), rp, ip("198.18.0.1"), 40000);
                return Input{icmp_error(kPortUnreachable, ip("198.18.0.1"), ip("198.19.0.100"), e).build()};
            },
            NoSess);
        add("from inside: " + n + " error from a host no rule covers -> IcmpErrorNoSession", In,
            [p, rp](NatHarness&) {
                const auto e = embedded(p, ip("198.19.0.100"), rp, ip("198.18.1.5"), 40000);
                return Input{icmp_error(kPortUnreachable, ip("198.18.1.5"), ip("198.19.0.100"), e).build()};
            },
            NoSess);
        add("from inside: " + n + " error naming another remote than the session's -> IcmpErrorNoSession", In,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const auto e = embedded(p, ip("198.19.0.101"), f.rport, f.inside, f.iport);
                return Input{icmp_error(kPortUnreachable, f.inside, ip("198.19.0.101"), e).build()};
            },
            NoSess);
        add("from inside: " + n + " error by another inside host about the flow's port -> IcmpErrorNoSession", In,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const auto e = embedded(p, f.remote, f.rport, ip("198.18.0.2"), f.iport);
                return Input{icmp_error(kPortUnreachable, ip("198.18.0.2"), f.remote, e).build()};
            },
            NoSess);
        add("from inside: " + n + " error quoting the public endpoint (already translated) -> IcmpErrorNoSession", In,
            [p](NatHarness& h) {
                Flow f = default_flow(p);
                send_out(h, f, from_inside(f));
                const auto e = embedded(p, f.remote, f.rport, f.pub, f.pport);
                return Input{icmp_error(kPortUnreachable, f.inside, f.remote, e).build()};
            },
            NoSess);
    }

    // A TCP session that expired (held in quarantine) passes no error.
    add("from outside: error about an expired TCP session -> IcmpErrorNoSession", Out,
        [](NatHarness& h) {
            Flow f = default_flow(Proto::Tcp);
            const Sent s = send_out(h, f, from_inside(f), 1000);
            h.worker().expire(1000 + 240 * 1000 + 5000, 1000);  // SYN_SENT: transitory 240 s
            EXPECT_EQ(h.counters().sessions_expired, 1u);
            return Input{icmp_error(kPortUnreachable, f.remote, f.pub, s.translated).build()};
        },
        NoSess);

    // Malformed embedded packets.
    add("from outside: embedded IP header + 4 bytes -> IcmpErrorBadInner", Out,
        [](NatHarness& h) {
            Flow f = default_flow(Proto::Udp);
            const Sent s = send_out(h, f, from_inside(f));
            return Input{icmp_error(kPortUnreachable, f.remote, f.pub, cut(s.translated, 4)).build()};
        },
        DropReason::IcmpErrorBadInner);
    add("from inside: embedded IP header only -> IcmpErrorBadInner", In,
        [](NatHarness& h) {
            Flow f = default_flow(Proto::Udp);
            send_out(h, f, from_inside(f));
            const Sent r = send_in(h, f, from_outside(f));
            return Input{icmp_error(kPortUnreachable, f.inside, f.remote, cut(r.translated, 0)).build()};
        },
        DropReason::IcmpErrorBadInner);
    add("from outside: embedded ICMP error (error about an error) -> IcmpErrorBadInner", Out,
        [](NatHarness& h) {
            Flow f = default_flow(Proto::Udp);
            const Sent s = send_out(h, f, from_inside(f));
            PacketBuilder inner;
            inner.ipv4(f.pub, f.remote).icmp_error(ICMP_TYPE_DEST_UNREACH, 3, s.translated);
            return Input{icmp_error(kTimeExceeded, ip("198.19.0.254"), f.pub, cut(inner.build_ip(), 8)).build()};
        },
        DropReason::IcmpErrorBadInner);
    return cases;
}

TEST(NatIcmpError, NoSessionAndMalformed) {
    for (const Case& c : rejection_cases()) run_case(c);
}

// Worker 0 of 2: an error from outside goes to the worker owning the embedded source port
// (the public port of the session it is about), untouched.
TEST(NatIcmpError, HandoffToOwnerOfEmbeddedSourcePort) {
    std::vector<Case> cases;
    for (Proto p : kProtos) {
        const std::string n = proto_name(p);
        const uint16_t rp = p == Proto::Echo ? 0 : 53;
        for (uint16_t port : {uint16_t{1025}, uint16_t{40001}, uint16_t{65535}}) {
            std::string d = "from outside: error about ";
            d += n;
            d += " from 198.19.0.10:";
            d += std::to_string(port);
            d += " on worker 0 of 2 -> Handoff to worker 1";
            Case c{d, Side::Outside,
                   [p, port, rp](NatHarness&) {
                       const auto e = embedded(p, ip("198.19.0.10"), port, ip("198.19.0.100"), rp);
                       return Input{icmp_error(kFragNeeded, ip("198.19.0.254"), ip("198.19.0.10"), e).build()};
                   },
                   Verdict::Handoff};
            c.workers = 2;
            c.handoff_to = 1;
            cases.push_back(c);
            // The outer destination port does not exist; the embedded *destination* port does
            // not decide either: an even embedded source with an odd remote port stays here.
        }
        {
            Case c{"from outside: error about " + n + " from an even port with an odd remote port, no session, worker 0 of 2 -> IcmpErrorNoSession",
                   Side::Outside,
                   [p](NatHarness&) {
                       const uint16_t remote_port = p == Proto::Echo ? 0 : 53;
                       const auto e = embedded(p, ip("198.19.0.11"), 40000, ip("198.19.0.100"), remote_port);
                       return Input{icmp_error(kPortUnreachable, ip("198.19.0.100"), ip("198.19.0.11"), e).build()};
                   },
                   Verdict::Drop, DropReason::IcmpErrorNoSession};
            c.workers = 2;
            cases.push_back(c);
        }
        {
            Case c{"from outside: error about a " + n + " flow worker 0 of 2 opened is translated", Side::Outside,
                   [p](NatHarness& h) {
                       Flow f = default_flow(p);
                       const Sent s = send_out(h, f, from_inside(f));
                       EXPECT_EQ(f.pport % 2, 0);
                       Input in;
                       in.frame = icmp_error(kTimeExceeded, ip("198.19.0.254"), f.pub, s.translated).build();
                       in.outer_src = ip("198.19.0.254");
                       in.outer_dst = f.inside;
                       in.inner_src = f.inside;
                       in.inner_dst = f.remote;
                       in.inner_sport = f.iport;
                       in.inner_dport = p == Proto::Echo ? f.iport : f.rport;
                       in.original = s.original;
                       return in;
                   },
                   Verdict::Forward};
            c.workers = 2;
            cases.push_back(c);
        }
    }
    for (const Case& c : cases) run_case(c);
}

// Errors never refresh a session's idle timer: a UDP session that only saw ICMP errors after
// its last datagram expires on time (a control session refreshed by a datagram does not).
TEST(NatIcmpError, ErrorsDoNotRefreshTimers) {
    const uint32_t t0 = 1000;
    const uint32_t udp_ms = 120 * 1000;  // lab pool default
    for (bool refresh_with_data : {false, true}) {
        SCOPED_TRACE(refresh_with_data ? "control: refreshed by a datagram" : "only ICMP errors after the first datagram");
        NatHarness h;
        Flow f = default_flow(Proto::Udp);
        const Sent s = send_out(h, f, from_inside(f), t0);
        const Sent r = send_in(h, f, from_outside(f), t0);
        ASSERT_FALSE(HasFailure());
        // Errors from both sides well inside the idle timeout.
        for (uint32_t t = t0 + 10000; t < t0 + udp_ms - 5000; t += 10000) {
            auto a = h.in(icmp_error(kFragNeeded, ip("198.19.0.254"), f.pub, s.translated).build(), t);
            EXPECT_EQ(vname(a.result.verdict), "Forward") << rname(a.result.reason);
            auto b = h.out(icmp_error(kPortUnreachable, f.inside, f.remote, r.translated).build(), t);
            EXPECT_EQ(vname(b.result.verdict), "Forward") << rname(b.result.reason);
        }
        if (refresh_with_data) {
            auto d = h.out(from_inside(f).build(), t0 + udp_ms - 5000);
            EXPECT_EQ(vname(d.result.verdict), "Forward");
        }
        EXPECT_EQ(h.counters().sessions_created, 1u);
        // Past the timeout counted from the first datagram, with the ~1 s expiry granularity.
        h.worker().expire(t0 + udp_ms + 2500, 1000);
        auto late = h.in(from_outside(f).build(), t0 + udp_ms + 2600);
        if (refresh_with_data) {
            EXPECT_EQ(h.counters().sessions_expired, 0u);
            EXPECT_EQ(vname(late.result.verdict), "Forward");
        } else {
            EXPECT_EQ(h.counters().sessions_expired, 1u) << "ICMP errors kept the session alive";
            EXPECT_EQ(vname(late.result.verdict), "Drop");
            EXPECT_EQ(rname(late.result.reason), "no_session");
        }
    }
}

// Errors about a TCP session do not move its state or timers: an embryonic session that only
// saw errors expires after tcp_transitory as if they had not come.
TEST(NatIcmpError, ErrorsDoNotTouchTcpState) {
    NatHarness h;
    Flow f = default_flow(Proto::Tcp);
    const Sent s = send_out(h, f, from_inside(f), 1000);
    ASSERT_FALSE(HasFailure());
    const auto states = h.counters().tcp_state;
    EXPECT_EQ(states[static_cast<size_t>(TcpState::SynSent)], 1u);
    for (const ErrorKind& k : kKinds) {
        auto e = h.in(icmp_error(k, ip("198.19.0.254"), f.pub, s.translated).build(), 200000);
        EXPECT_EQ(vname(e.result.verdict), "Forward") << k.name << ": " << rname(e.result.reason);
    }
    EXPECT_EQ(h.counters().tcp_state, states);
    h.worker().expire(1000 + 240 * 1000 + 2500, 1000);
    EXPECT_EQ(h.counters().sessions_expired, 1u) << "the errors at 200 s refreshed the embryonic session";
    EXPECT_EQ(h.worker().sessions().size(), 0u);  // an expired handshake is freed at once
}

}  // namespace
}  // namespace snatgw::test
