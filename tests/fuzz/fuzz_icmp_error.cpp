// libFuzzer harness: ICMP errors about a real session, both directions, through a NatWorker.
//
// Each input opens one flow (TCP, UDP, UDP without checksum or ICMP echo) from an inside host,
// answers it from the remote (and for TCP optionally completes the handshake), then builds an
// ICMP error (type, code, rest of header, TTL, VLAN, how much of the offending packet it
// carries: all chosen by the input) about a packet of that flow:
//   - from the outside, sent by a router about the packet we sent out (embedded: our
//     translated packet, public source), or
//   - from the inside, sent by the inside host about the answer it received (embedded: the
//     answer after translation, inside destination).
// Optionally the input then flips bytes anywhere in the error frame, with or without
// repairing the checksums afterwards.
//
// Input: a fixed header read with Reader (fields below in order; missing bytes read as 0),
// then mutations: a count and (offset u16, xor u8) each.
//
// Asserted: the flow's own packets are forwarded (a fresh engine must); check_frame and
// check_worker (fuzz_checks.h) for the error; and when nothing was flipped, a well-formed
// error (type 3/11/12, TTL > 1, at least the embedded header + 8 bytes) is forwarded, its
// outer and embedded addresses are the right ones, and the embedded packet is again exactly
// the packet the other end sent (its L4 bytes identical, its IP header except TTL/checksum).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_checks.h"

namespace snatgw::fuzz {
namespace {

enum class Proto : uint8_t { Tcp, Udp, Udp0, Echo };

constexpr uint32_t kRemoteIsn = 0x10000000u;

struct Header {
    uint8_t shape, flow, host, remote, payload, type_sel, type_raw, code, ttl, extra, router;
    uint16_t iport, rport;
    uint8_t rest[4];
    Proto proto() const { return static_cast<Proto>(flow & 3); }
    bool from_inside() const { return flow & 0x04; }
    bool vlan() const { return flow & 0x08; }
    bool whole() const { return flow & 0x10; }
    bool mutate() const { return flow & 0x20; }
    bool keep_broken() const { return flow & 0x40; }  // no checksum repair after flipping
    bool establish() const { return flow & 0x80; }
    uint8_t type() const {
        static constexpr uint8_t kTypes[4] = {kIcmpDestUnreachable, kIcmpTimeExceeded,
                                              kIcmpParameterProblem, 0};
        return (type_sel & 3) == 3 ? type_raw : kTypes[type_sel & 3];
    }
};

Header read_header(Reader& in) {
    Header h{};
    h.shape = in.u8();
    h.flow = in.u8();
    h.host = in.u8();
    h.iport = in.u16();
    h.remote = in.u8();
    h.rport = in.u16();
    h.payload = in.u8() & 63;
    h.type_sel = in.u8();
    h.type_raw = in.u8();
    h.code = in.u8();
    for (uint8_t& b : h.rest) b = in.u8();
    h.ttl = in.u8();
    h.extra = in.u8();
    h.router = in.u8();
    return h;
}

test::PacketBuilder base(const Header& h, uint32_t src, uint32_t dst) {
    test::PacketBuilder b;
    b.eth();
    if (h.vlan()) b.vlan(100);
    b.ipv4(src, dst).ttl(64).payload(h.payload);
    return b;
}

// One packet of the flow: the inside host's (orig) or the remote's (answer).
std::vector<uint8_t> flow_packet(const Header& h, uint32_t inside, uint32_t remote, bool orig,
                                 uint8_t tcp_flags, uint32_t seq, uint32_t ack) {
    const uint32_t src = orig ? inside : remote, dst = orig ? remote : inside;
    const uint16_t sport = orig ? h.iport : h.rport, dport = orig ? h.rport : h.iport;
    test::PacketBuilder b = base(h, src, dst);
    switch (h.proto()) {
        case Proto::Tcp:
            b.tcp(sport, dport, seq, ack, tcp_flags, 29200);
            if (tcp_flags & kTcpSyn) b.tcp_option_mss(1460).tcp_option_wscale(7);
            break;
        case Proto::Udp: b.udp(sport, dport); break;
        case Proto::Udp0: b.udp(sport, dport).udp_zero_checksum(); break;
        case Proto::Echo:
            b.icmp_echo(orig ? kIcmpEchoRequest : kIcmpEchoReply, h.iport, 7);
            break;
    }
    return b.build();
}

// Runs one frame; returns its result.
FrameResult run(NatWorker& w, Side side, std::vector<uint8_t>& f, uint32_t now) {
    Frame fr{f.data(), static_cast<uint32_t>(f.size())};
    FrameResult r;
    w.process(side, &fr, &r, 1, now);
    return r;
}

std::vector<uint8_t> ip_part(const std::vector<uint8_t>& frame) {
    const uint32_t off = ipv4_offset(frame.data(), frame.size());
    return {frame.begin() + off, frame.end()};
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    snatgw::fuzz::init_eal();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw;
    using namespace snatgw::fuzz;
    Reader in(data, size);
    const Header h = read_header(in);
    const EngineShape shape = engine_shape(h.shape);
    const NatConfig cfg = fuzz_nat_config(shape.workers);
    NatWorker w(&cfg, worker_params(shape));
    const uint32_t inside = test::ip("198.18.0.0") | h.host;
    const uint32_t remote = test::ip("203.0.113.0") | h.remote;
    const bool tcp = h.proto() == Proto::Tcp;
    uint32_t now = 1000;

    // The flow: the inside host's first packet, the answer, for TCP the handshake's last ACK.
    std::vector<uint8_t> out_orig = flow_packet(h, inside, remote, true, kTcpSyn, 1000, 0);
    std::vector<uint8_t> out_sent = out_orig;  // translated
    FrameResult r = run(w, Side::Inside, out_sent, now);
    check_frame(Side::Inside, out_orig.data(), out_sent.data(), static_cast<uint32_t>(out_sent.size()), r, cfg, shape);
    FUZZ_CHECK(r.verdict == Verdict::Forward, "a fresh engine did not forward a new flow's first packet (%s, %s)",
               verdict_name(r.verdict), std::string(drop_reason_name(r.reason)).c_str());
    // The public endpoint, as the remote sees it.
    const PacketView pub = [&] {
        PacketView v;
        parse_frame(out_sent.data(), static_cast<uint32_t>(out_sent.size()), v);
        return v;
    }();
    const uint32_t pub_addr = load_be32(pub.l3() + ipv4_off::kSrc);
    const uint16_t pub_port = load_be16(pub.l4() + (h.proto() == Proto::Echo ? l4_off::kIcmpId : l4_off::kSport));

    std::vector<uint8_t> in_orig = flow_packet(h, inside, remote, false, kTcpSyn | kTcpAck, kRemoteIsn, 1001);
    // Addressed to the public endpoint.
    {
        PacketView v;
        parse_frame(in_orig.data(), static_cast<uint32_t>(in_orig.size()), v);
        store_be32(v.l3() + ipv4_off::kDst, pub_addr);
        store_be16(v.l4() + (h.proto() == Proto::Echo ? l4_off::kIcmpId : l4_off::kDport), pub_port);
        fix_checksums(in_orig.data(), in_orig.size(), h.proto() != Proto::Udp0, false);
    }
    std::vector<uint8_t> in_sent = in_orig;
    r = run(w, Side::Outside, in_sent, ++now);
    check_frame(Side::Outside, in_orig.data(), in_sent.data(), static_cast<uint32_t>(in_sent.size()), r, cfg, shape);
    FUZZ_CHECK(r.verdict == Verdict::Forward, "the answer to a new flow was not forwarded (%s, %s)",
               verdict_name(r.verdict), std::string(drop_reason_name(r.reason)).c_str());
    if (tcp && h.establish()) {
        out_orig = flow_packet(h, inside, remote, true, kTcpAck, 1001, kRemoteIsn + 1);
        out_sent = out_orig;
        r = run(w, Side::Inside, out_sent, ++now);
        check_frame(Side::Inside, out_orig.data(), out_sent.data(), static_cast<uint32_t>(out_sent.size()), r, cfg, shape);
        FUZZ_CHECK(r.verdict == Verdict::Forward, "the handshake's ACK was not forwarded (%s, %s)",
                   verdict_name(r.verdict), std::string(drop_reason_name(r.reason)).c_str());
    }
    check_worker(w, cfg, shape);

    // The error. `about` is the offending packet as the error's sender saw it; `original` is
    // that packet as its source sent it (what the embedded copy must turn back into).
    const bool from_inside = h.from_inside();
    const std::vector<uint8_t> about = ip_part(from_inside ? in_sent : out_sent);
    const std::vector<uint8_t> original = ip_part(from_inside ? in_orig : out_orig);
    const std::size_t ihl = static_cast<std::size_t>(about[0] & 0x0f) * 4;
    std::size_t keep = h.whole() ? about.size() : ihl + 8 + h.extra % 40;
    if (h.extra >= 250) keep = ihl + (h.extra - 250);  // too short: fewer than 8 L4 bytes
    if (keep > about.size()) keep = about.size();
    const std::vector<uint8_t> embedded(about.begin(), about.begin() + static_cast<std::ptrdiff_t>(keep));
    const uint32_t src = from_inside ? inside : (h.router & 1 ? remote : test::ip("192.0.2.0") | h.router);
    const uint32_t dst = from_inside ? remote : pub_addr;
    test::PacketBuilder b;
    b.eth();
    if (h.vlan()) b.vlan(100);
    b.ipv4(src, dst).ttl(h.ttl).icmp_error(h.type(), h.code, embedded);
    std::vector<uint8_t> err = b.build();
    const uint32_t l3 = ipv4_offset(err.data(), err.size());
    std::memcpy(err.data() + l3 + 20 + 4, h.rest, 4);
    fix_checksums(err.data(), err.size(), true, false);

    bool flipped = false;
    if (h.mutate()) {
        const uint8_t n = in.u8() & 15;
        for (uint8_t i = 0; i < n; ++i) {
            const uint16_t off = in.u16();
            const uint8_t x = in.u8();
            if (err.empty() || x == 0) continue;
            err[off % err.size()] ^= x;
            flipped = true;
        }
        if (!h.keep_broken()) fix_checksums(err.data(), err.size(), true, true);
    }

    const std::vector<uint8_t> before = err;
    const Side side = from_inside ? Side::Inside : Side::Outside;
    r = run(w, side, err, ++now);
    check_frame(side, before.data(), err.data(), static_cast<uint32_t>(err.size()), r, cfg, shape);
    check_worker(w, cfg, shape);
    if (flipped) return 0;

    const uint8_t type = h.type();
    // An echo "error" is an echo message (it may even match the flow): nothing to expect.
    if (type == kIcmpEchoReply || type == kIcmpEchoRequest) return 0;
    const bool is_error = type == kIcmpDestUnreachable || type == kIcmpTimeExceeded ||
                          type == kIcmpParameterProblem;
    if (!is_error || keep < ihl + 8) {
        FUZZ_CHECK(r.verdict == Verdict::Drop, "ICMP type %u with %zu embedded bytes: %s", type, keep,
                   verdict_name(r.verdict));
        return 0;
    }
    if (h.ttl <= 1) {
        FUZZ_CHECK(r.verdict == Verdict::TtlExceeded, "ICMP error with TTL %u: %s", h.ttl,
                   verdict_name(r.verdict));
        return 0;
    }
    FUZZ_CHECK(r.verdict == Verdict::Forward, "a well-formed ICMP error (type %u, %zu embedded bytes, from %s) "
               "about a live session was not forwarded: %s, %s", type, keep,
               from_inside ? "inside" : "outside", verdict_name(r.verdict),
               std::string(drop_reason_name(r.reason)).c_str());

    // Outer addresses, and the embedded packet back to what its source sent.
    const uint8_t* outer = err.data() + l3;
    const uint8_t* emb = outer + 20 + 8;
    if (from_inside) {
        FUZZ_CHECK(load_be32(outer + ipv4_off::kSrc) == pub_addr, "ICMP error from inside: outer source not public");
        FUZZ_CHECK(load_be32(outer + ipv4_off::kDst) == remote, "ICMP error from inside: outer destination changed");
    } else {
        FUZZ_CHECK(load_be32(outer + ipv4_off::kDst) == inside, "ICMP error from outside: not sent to the inside host");
        FUZZ_CHECK(load_be32(outer + ipv4_off::kSrc) == src, "ICMP error from outside: outer source changed");
    }
    // An L4 checksum cut in half by the truncation cannot be updated (the engine leaves it):
    // only a whole one has to come back.
    const std::size_t l4_csum = ihl + (h.proto() == Proto::Tcp    ? l4_off::kTcpCsum
                                       : h.proto() == Proto::Echo ? l4_off::kIcmpCsum
                                                                  : l4_off::kUdpCsum);
    const bool half_csum = keep == l4_csum + 1;
    for (std::size_t i = 0; i < keep; ++i) {
        if (i == ipv4_off::kTtl || i == ipv4_off::kCsum || i == ipv4_off::kCsum + 1) continue;
        if (half_csum && i == l4_csum) continue;
        FUZZ_CHECK(emb[i] == original[i],
                   "embedded packet byte %zu is 0x%02x, its source sent 0x%02x (error from %s, %zu bytes "
                   "embedded)\nembedded %s\noriginal %s", i, emb[i], original[i],
                   from_inside ? "inside" : "outside", keep, hex(emb, keep).c_str(),
                   hex(original.data(), keep).c_str());
    }
    return 0;
}
