// libFuzzer harness: what the gateway's main lcore does with frames it receives itself (no
// DPDK, no sessions): ARP parsing and answering (dataplane/arp.h), echo replies from its own
// addresses and the ICMP errors it builds about packets it cannot forward
// (dataplane/local_icmp.h).
//
// Input: ctl (1 byte), then the received frame.
//   ctl bits 0-1  output buffer size for the ARP reply and the ICMP error (kCaps[])
//       bits 2-3  ICMP error type: 11/0 time exceeded, 3/1 host unreachable,
//                 3/4 fragmentation needed (MTU 1400), 12/0 parameter problem
//
// Asserted: nothing is read or written outside the buffers (each exactly its size, so ASan
// sees any overrun); a parsed ARP packet says what the bytes say, and an answer is a valid ARP
// reply from our MAC for the asked address to the asker, same VLAN; an echo reply is a valid
// echo reply (checksums verify) back to the sender with the request's identifier, sequence and
// data; an ICMP error is a valid ICMP error (its checksums verify; the quoted packet's too when
// the original's did) to the original sender, at most 576 bytes of IP, quoting the original
// verbatim.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "arp.h"
#include "checksum.h"
#include "fuzz_checks.h"
#include "local_icmp.h"

namespace snatgw::fuzz {
namespace {

constexpr uint32_t kCaps[4] = {2048, 60, 59, 100};
const MacAddr kOurMac{0x02, 0, 0, 0, 0, 0x01};
const MacAddr kPeerMac{0x02, 0, 0, 0, 0, 0x02};
const uint32_t kOurIp = test::ip("198.18.0.1");
const uint32_t kPoolIp = test::ip("198.19.0.10");

void check_arp(const std::vector<uint8_t>& frame, uint32_t cap) {
    const std::optional<ArpPacket> p = parse_arp(frame.data(), static_cast<uint32_t>(frame.size()));
    if (!p) return;
    const uint32_t off = frame.size() >= 18 && load_be16(frame.data() + 12) == kEtherTypeVlan ? 18 : 14;
    FUZZ_CHECK(p->vlan == (off == 18), "ARP vlan flag");
    FUZZ_CHECK(load_be16(frame.data() + off - 2) == kEtherTypeArp, "parse_arp accepted ethertype 0x%04x",
               load_be16(frame.data() + off - 2));
    FUZZ_CHECK(frame.size() >= off + kArpPayloadLen, "parse_arp accepted a %zu-byte frame", frame.size());
    const uint8_t* a = frame.data() + off;
    FUZZ_CHECK(p->op == load_be16(a + 6) && (p->op == kArpOpRequest || p->op == kArpOpReply), "ARP op %u", p->op);
    FUZZ_CHECK(p->sender_ip == load_be32(a + 14) && p->target_ip == load_be32(a + 24), "ARP addresses");

    const ArpResponder responder(kOurMac, {kOurIp, kPoolIp});
    std::vector<uint8_t> out(cap);
    const uint32_t n = responder.reply(*p, out.data(), cap);
    if (tracing()) std::fprintf(stderr, "  ARP op %u: reply %u bytes\n", p->op, n);
    FUZZ_CHECK(n <= cap, "ARP reply of %u bytes in a %u-byte buffer", n, cap);
    if (n == 0) {
        FUZZ_CHECK(!responder.should_reply(*p) || cap < kArpFrameLen, "no ARP reply although one is due");
        return;
    }
    FUZZ_CHECK(responder.should_reply(*p) && p->op == kArpOpRequest && responder.answers_for(p->target_ip),
               "ARP reply to something that is not a request for our address");
    const std::optional<ArpPacket> r = parse_arp(out.data(), n);
    FUZZ_CHECK(r && r->op == kArpOpReply && r->sender_ip == p->target_ip && r->sender_mac == kOurMac &&
                   r->target_ip == p->sender_ip && r->target_mac == p->sender_mac && r->vlan == p->vlan &&
                   r->vlan_tci == p->vlan_tci,
               "malformed ARP reply: %s", hex(out.data(), n).c_str());
}

void check_echo(const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> f = frame;
    const uint32_t n = build_echo_reply(f.data(), static_cast<uint32_t>(f.size()));
    if (tracing()) std::fprintf(stderr, "  echo reply: %u bytes\n", n);
    FUZZ_CHECK(n <= frame.size(), "echo reply of %u bytes from a %zu-byte request", n, frame.size());
    if (n == 0) return;
    PacketView in, out;
    std::vector<uint8_t> copy = frame;
    FUZZ_CHECK(parse_frame(copy.data(), static_cast<uint32_t>(copy.size()), in).cls == FrameClass::Ipv4 &&
                   in.icmp == IcmpKind::Echo && in.l4()[0] == kIcmpEchoRequest,
               "echo reply built from something that is not an echo request");
    FUZZ_CHECK(parse_frame(f.data(), n, out).cls == FrameClass::Ipv4 && out.icmp == IcmpKind::Echo &&
                   out.l4()[0] == kIcmpEchoReply, "the echo reply does not parse as one:\n%s", hex(f.data(), n).c_str());
    const test::ChecksumReport rep = test::verify_checksums(f.data(), n);
    FUZZ_CHECK(rep.ok, "echo reply checksums: %s", rep.detail.c_str());
    FUZZ_CHECK(load_be32(out.l3() + ipv4_off::kDst) == load_be32(in.l3() + ipv4_off::kSrc) &&
                   load_be32(out.l3() + ipv4_off::kSrc) == load_be32(in.l3() + ipv4_off::kDst),
               "echo reply addresses");
    FUZZ_CHECK(out.l4_len == in.l4_len && std::memcmp(out.l4() + 4, in.l4() + 4, in.l4_len - 4) == 0,
               "the echo reply's identifier, sequence or data differ from the request's");
}

void check_icmp_error(const std::vector<uint8_t>& frame, uint32_t cap, uint8_t sel) {
    static constexpr uint8_t kType[4] = {kIcmpTimeExceeded, kIcmpDestUnreachable, kIcmpDestUnreachable,
                                         kIcmpParameterProblem};
    static constexpr uint8_t kCode[4] = {0, 1, 4, 0};
    const uint32_t rest = sel == 2 ? 1400 : 0;
    std::vector<uint8_t> out(cap);
    const uint32_t n = build_icmp_error(out.data(), cap, frame.data(), static_cast<uint32_t>(frame.size()),
                                        kType[sel], kCode[sel], kOurIp, kOurMac, kPeerMac, rest);
    if (tracing()) std::fprintf(stderr, "  ICMP error %u/%u: %u bytes (buffer %u)\n", kType[sel], kCode[sel], n, cap);
    FUZZ_CHECK(n <= cap, "ICMP error of %u bytes in a %u-byte buffer", n, cap);
    if (n == 0) return;
    PacketView v;
    const ParseResult pr = parse_frame(out.data(), n, v);
    // The NAT's parser takes only TCP, UDP and echo inside errors; the gateway quotes anything.
    FUZZ_CHECK((pr.cls == FrameClass::Ipv4 || pr.reason == DropReason::IcmpErrorBadInner) &&
                   v.proto == kProtoIcmp && v.l4()[0] == kType[sel] && v.l4()[1] == kCode[sel],
               "the ICMP error does not parse as one (%s):\n%s", std::string(drop_reason_name(pr.reason)).c_str(),
               hex(out.data(), n).c_str());
    FUZZ_CHECK(v.l3_len <= kIcmpErrorMaxIpLen, "ICMP error of %u IP bytes", v.l3_len);
    // Its own checksums always verify; the quoted packet's too when the original's did (it is
    // quoted as received, wrong checksums included).
    FUZZ_CHECK(csum::fold(csum::partial(v.l3(), v.l4_off - v.l3_off)) == 0xffff, "ICMP error: IPv4 header checksum");
    FUZZ_CHECK(csum::fold(csum::partial(v.l4(), v.l4_len)) == 0xffff, "ICMP error: ICMP checksum");
    if (checksums_ok(frame.data(), frame.size())) {
        const test::ChecksumReport rep = test::verify_checksums(out.data(), n);
        FUZZ_CHECK(rep.ok, "ICMP error checksums: %s", rep.detail.c_str());
    }
    FUZZ_CHECK(load_be32(v.l4() + 4) == rest, "rest of header");
    // The quoted packet is the original's IP packet, from its header on, unchanged.
    const uint32_t orig_l3 = ipv4_offset(frame.data(), frame.size());
    FUZZ_CHECK(orig_l3 != 0, "ICMP error about a frame that is not IPv4");
    const uint8_t* orig_ip = frame.data() + orig_l3;
    FUZZ_CHECK(load_be32(v.l3() + ipv4_off::kDst) == load_be32(orig_ip + ipv4_off::kSrc) &&
                   load_be32(v.l3() + ipv4_off::kSrc) == kOurIp, "ICMP error addresses");
    const uint32_t quoted_at = v.l4_off + kIcmpHeader;
    const uint32_t quoted = v.l3_off + v.l3_len - quoted_at;
    const uint32_t orig_total = load_be16(orig_ip + ipv4_off::kTotalLen);
    FUZZ_CHECK(quoted <= orig_total && orig_l3 + quoted <= frame.size(), "quotes %u bytes of a %u-byte packet",
               quoted, orig_total);
    FUZZ_CHECK(std::memcmp(out.data() + quoted_at, orig_ip, quoted) == 0,
               "the quoted packet differs from the original");
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw::fuzz;
    if (size < 1) return 0;
    const uint8_t ctl = data[0];
    const std::vector<uint8_t> frame(data + 1, data + size);  // exactly the frame: overreads hit ASan
    check_arp(frame, kCaps[ctl & 3]);
    check_echo(frame);
    check_icmp_error(frame, kCaps[ctl & 3], (ctl >> 2) & 3);
    return 0;
}
