// libFuzzer harness: the parser and the header rewriting on their own (no DPDK, no sessions),
// so arbitrary frames reach every translation function fast.
//
// Input: ctl (1 byte), address (4 bytes), port (2 bytes), then the frame.
//   ctl bit 0   rewrite the source side (inside->outside; from-outside for ICMP errors) or the
//               destination side (outside->inside; from-inside for ICMP errors)
//       bit 1   repair the frame's checksums first (IPv4, L4, embedded IPv4 header)
//       bit 2   parse without verifying the IPv4 header checksum
//       bit 3   decrement the TTL as well (when it is > 1, as the engine does)
//       bit 4   accept IPv4 fragments, as the engine parses (a later fragment, which has no L4
//               header, is only parsed and checked: the engine rewrites its address itself)
//
// Asserted: parse_frame's offsets and lengths lie inside the frame and agree with each other
// and with the test suite's independent decoder (tests/unit/packet_builder.h); the rewrite
// puts the new address and port where they belong, changes no other byte than the address,
// port, TTL and checksum fields it owns, keeps a zero UDP checksum zero, and leaves valid
// checksums valid; the result parses again.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "checksum.h"
#include "fuzz_support.h"
#include "translate.h"

namespace snatgw::fuzz {
namespace {

void check_view(const PacketView& v, uint32_t len) {
    FUZZ_CHECK(v.l3_off == 14 || v.l3_off == 18, "l3_off %u", v.l3_off);
    FUZZ_CHECK(v.l3_off + v.l3_len <= len, "IPv4 packet ends at %u, frame at %u", v.l3_off + v.l3_len, len);
    const uint32_t ihl = (v.l3()[0] & 0x0f) * 4u;
    FUZZ_CHECK(ihl >= 20 && v.l4_off == v.l3_off + ihl && v.l4_len + ihl == v.l3_len,
               "l4_off %u, l4_len %u, ihl %u, l3_len %u", v.l4_off, v.l4_len, ihl, v.l3_len);
    FUZZ_CHECK(v.proto == v.l3()[ipv4_off::kProto], "proto");
    const uint16_t frag = load_be16(v.l3() + ipv4_off::kFrag);
    FUZZ_CHECK(v.fragment == ((frag & 0x3fff) != 0) && v.frag_offset == (frag & 0x1fffu) * 8u &&
                   v.more_fragments == ((frag & 0x2000) != 0),
               "fragment fields %d/%d/%u for frag word 0x%04x", v.fragment, v.more_fragments, v.frag_offset, frag);
    if (v.later_fragment()) {
        FUZZ_CHECK(v.proto == kProtoTcp || v.proto == kProtoUdp || v.proto == kProtoIcmp,
                   "later fragment of protocol %u accepted", v.proto);
        return;
    }
    switch (v.proto) {
        case kProtoTcp:
            FUZZ_CHECK(v.l4_len >= 20 && (v.l4()[12] >> 4) * 4u <= v.l4_len, "TCP header beyond the packet");
            break;
        case kProtoUdp: {
            FUZZ_CHECK(v.l4_len >= 8, "UDP header beyond the packet");
            // A whole datagram's UDP length fits the packet; a first fragment's covers more.
            const uint32_t ulen = load_be16(v.l4() + l4_off::kUdpLen);
            FUZZ_CHECK(ulen >= 8 && (v.fragment ? ulen >= v.l4_len : ulen <= v.l4_len), "UDP length %u, %u bytes",
                       ulen, v.l4_len);
            break;
        }
        case kProtoIcmp:
            FUZZ_CHECK(v.l4_len >= 8, "ICMP header beyond the packet");
            break;
        default:
            fail("parse accepted protocol %u", v.proto);
    }
    if (v.icmp != IcmpKind::Error) return;
    const InnerView& in = v.inner;
    const uint32_t end = v.l3_off + v.l3_len;
    FUZZ_CHECK(in.l3_off == v.l4_off + 8, "embedded header at %u, ICMP at %u", in.l3_off, v.l4_off);
    FUZZ_CHECK(in.l4_off >= in.l3_off + 20 && in.l4_off + 8 <= end && in.l4_avail == end - in.l4_off,
               "embedded L4 at %u (%u bytes) in a packet ending at %u", in.l4_off, in.l4_avail, end);
    FUZZ_CHECK(in.proto == v.frame[in.l3_off + ipv4_off::kProto], "embedded proto");
}

// The parse agrees with the unit tests' decoder (written separately, from the RFCs).
void check_decode(const PacketView& v, const uint8_t* f, uint32_t len) {
    const auto d = test::decode(f, len);
    FUZZ_CHECK(d.has_value(), "parse_frame accepted a frame the test decoder rejects");
    FUZZ_CHECK(d->l3_offset == v.l3_off && d->l4_offset == v.l4_off && d->proto == v.proto,
               "decoder: l3 %zu l4 %zu proto %u; parse: %u %u %u", d->l3_offset, d->l4_offset,
               d->proto, v.l3_off, v.l4_off, v.proto);
    FUZZ_CHECK(d->src == load_be32(v.l3() + ipv4_off::kSrc) && d->dst == load_be32(v.l3() + ipv4_off::kDst),
               "decoder and parser disagree on the addresses");
    if (v.later_fragment()) return;  // (the decoder leaves L4 fields zero too)
    if (v.proto == kProtoTcp || v.proto == kProtoUdp)
        FUZZ_CHECK(d->sport == load_be16(v.l4()) && d->dport == load_be16(v.l4() + 2), "ports differ");
    if (v.icmp == IcmpKind::Echo)
        FUZZ_CHECK(d->icmp_id == load_be16(v.l4() + l4_off::kIcmpId), "echo identifier differs");
    if (v.icmp == IcmpKind::Error) {
        FUZZ_CHECK(d->has_inner && d->inner_l3_offset == v.inner.l3_off && d->inner_proto == v.inner.proto,
                   "decoder and parser disagree on the embedded packet");
    }
}

// Offsets of the 16-bit port (or echo identifier) and checksum fields of an L4 header.
uint32_t port_off(uint8_t proto, bool src) {
    if (proto == kProtoIcmp) return l4_off::kIcmpId;
    return src ? l4_off::kSport : l4_off::kDport;
}
uint32_t csum_off(uint8_t proto) {
    return proto == kProtoTcp ? l4_off::kTcpCsum : proto == kProtoUdp ? l4_off::kUdpCsum : l4_off::kIcmpCsum;
}

void allow(std::vector<bool>& m, uint32_t off, uint32_t n) {
    for (uint32_t i = 0; i < n && off + i < m.size(); ++i) m[off + i] = true;
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw;
    using namespace snatgw::fuzz;
    if (size < 7) return 0;
    Reader rd(data, size);
    const uint8_t ctl = rd.u8();
    const uint32_t addr = rd.u32();
    const uint16_t port = rd.u16();
    std::vector<uint8_t> frame = rd.bytes(size);  // exactly the rest: overreads hit ASan
    const uint32_t len = static_cast<uint32_t>(frame.size());
    const bool src_side = ctl & 1;
    if (ctl & 2) fix_checksums(frame.data(), len, true, true);
    const bool verify = !(ctl & 4);
    const bool fragments = (ctl & 16) != 0;

    const std::vector<uint8_t> before = frame;
    PacketView v;
    const ParseResult pr = parse_frame(frame.data(), len, v, verify, fragments);
    FUZZ_CHECK(frame == before, "parse_frame wrote to the frame");
    if (pr.cls != FrameClass::Ipv4) {
        FUZZ_CHECK(pr.cls == FrameClass::Arp || pr.reason < DropReason::Count, "drop without a reason");
        return 0;
    }
    check_view(v, len);
    check_decode(v, frame.data(), len);
    if (v.later_fragment()) return 0;

    // Rewrite. For an ICMP error the source side is "from outside" (the embedded source and the
    // outer destination change), the destination side "from inside".
    const uint32_t naddr = htonl(addr), nport = htons(port);
    std::vector<bool> may_change(len, false);
    const bool error = v.icmp == IcmpKind::Error;
    const uint8_t ttl = packet_ttl(v);
    const bool dec = (ctl & 8) && ttl > 1;
    allow(may_change, v.l3_off + ipv4_off::kCsum, 2);
    if (dec) allow(may_change, v.l3_off + ipv4_off::kTtl, 1);
    if (!error) {
        if (src_side) rewrite_source(v, naddr, static_cast<uint16_t>(nport));
        else rewrite_destination(v, naddr, static_cast<uint16_t>(nport));
        allow(may_change, v.l3_off + (src_side ? ipv4_off::kSrc : ipv4_off::kDst), 4);
        allow(may_change, v.l4_off + port_off(v.proto, src_side), 2);
        allow(may_change, v.l4_off + csum_off(v.proto), 2);
    } else {
        const InnerView& in = v.inner;
        if (src_side) rewrite_icmp_error_from_outside(v, naddr, static_cast<uint16_t>(nport));
        else rewrite_icmp_error_from_inside(v, naddr, static_cast<uint16_t>(nport));
        // Outer: the other address than the embedded one (the error travels back).
        allow(may_change, v.l3_off + (src_side ? ipv4_off::kDst : ipv4_off::kSrc), 4);
        allow(may_change, v.l4_off + l4_off::kIcmpCsum, 2);
        allow(may_change, in.l3_off + (src_side ? ipv4_off::kSrc : ipv4_off::kDst), 4);
        allow(may_change, in.l3_off + ipv4_off::kCsum, 2);
        allow(may_change, in.l4_off + port_off(in.proto, src_side), 2);
        if (csum_off(in.proto) + 2 <= in.l4_avail) allow(may_change, in.l4_off + csum_off(in.proto), 2);
    }
    if (dec) decrement_ttl(v);

    for (uint32_t i = 0; i < len; ++i)
        FUZZ_CHECK(may_change[i] || frame[i] == before[i],
                   "byte %u changed (0x%02x -> 0x%02x), it is none of the fields the rewrite owns "
                   "(l3 %u, l4 %u, embedded l3 %u l4 %u)", i, before[i], frame[i], v.l3_off, v.l4_off,
                   v.inner.l3_off, v.inner.l4_off);

    // The new endpoint is in place.
    const uint8_t* ip = error ? frame.data() + v.inner.l3_off : v.l3();
    const uint8_t* l4 = error ? frame.data() + v.inner.l4_off : v.l4();
    const uint8_t proto = error ? v.inner.proto : v.proto;
    FUZZ_CHECK(load_be32(ip + (src_side ? ipv4_off::kSrc : ipv4_off::kDst)) == addr, "address not written");
    FUZZ_CHECK(load_be16(l4 + port_off(proto, src_side)) == port, "port not written");
    if (error)
        FUZZ_CHECK(load_be32(v.l3() + (src_side ? ipv4_off::kDst : ipv4_off::kSrc)) == addr,
                   "outer address not written");
    if (proto == kProtoUdp && csum_off(proto) + 2 <= (error ? v.inner.l4_avail : v.l4_len) &&
        load_be16(before.data() + (l4 - frame.data()) + l4_off::kUdpCsum) == 0)
        FUZZ_CHECK(load_be16(l4 + l4_off::kUdpCsum) == 0, "a zero UDP checksum became non-zero");
    if (dec) FUZZ_CHECK(packet_ttl(v) + 1 == ttl, "TTL");

    // Still a frame, with checksums as valid as before.
    std::vector<uint8_t> copy = frame;
    PacketView again;
    // (parsed without checking the IPv4 header checksum: check it now only if it was valid)
    const bool ip_ok = csum::fold(csum::partial(before.data() + v.l3_off, (before[v.l3_off] & 0x0f) * 4u)) == 0xffff;
    const ParseResult pr2 = parse_frame(copy.data(), len, again, ip_ok, fragments);
    FUZZ_CHECK(pr2.cls == FrameClass::Ipv4, "the rewritten frame no longer parses: %s",
               std::string(drop_reason_name(pr2.reason)).c_str());
    if (checksums_ok(before.data(), len)) {
        const test::ChecksumReport rep = test::verify_checksums(frame.data(), len);
        FUZZ_CHECK(rep.ok, "checksums were valid, after the rewrite: %s\nbefore %s\nafter  %s",
                   rep.detail.c_str(), hex(before.data(), len).c_str(), hex(frame.data(), len).c_str());
    }
    return 0;
}
