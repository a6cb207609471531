// Bounds-checked header parsing; see packet_view.h.
#include "packet_view.h"

#include "byte_order.h"
#include "checksum.h"

namespace snatgw {

namespace {

ParseResult drop(DropReason r) { return {FrameClass::Dropped, r}; }

bool is_fragment(const uint8_t* ip) {
    // MF set or a non-zero offset: the L4 header is absent or incomplete in this piece.
    return (load_be16(ip + ipv4_off::kFrag) & 0x3fff) != 0;
}

bool translatable_proto(uint8_t proto) {
    return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoIcmp;
}

// Embedded packet of an ICMP error: an IPv4 header plus at least 8 bytes of its L4 header.
bool parse_inner(PacketView& v) {
    const uint32_t start = v.l4_off + kIcmpHeader;
    const uint32_t end = v.l3_off + v.l3_len;
    if (end < start || end - start < kIpv4MinHeader) return false;
    const uint32_t avail = end - start;
    const uint8_t* ip = v.frame + start;
    if ((ip[0] >> 4) != 4) return false;
    const uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < kIpv4MinHeader || ihl + 8 > avail) return false;
    // A later fragment of the original datagram carries no L4 header to translate.
    if ((load_be16(ip + ipv4_off::kFrag) & 0x1fff) != 0) return false;
    InnerView& in = v.inner;
    in.l3_off = start;
    in.l4_off = start + ihl;
    in.l4_avail = avail - ihl;
    in.proto = ip[ipv4_off::kProto];
    switch (in.proto) {
        case kProtoTcp:
        case kProtoUdp:
            in.icmp = IcmpKind::NotIcmp;
            return true;
        case kProtoIcmp: {
            const uint8_t type = ip[ihl];
            if (type != kIcmpEchoRequest && type != kIcmpEchoReply) return false;
            in.icmp = IcmpKind::Echo;
            return true;
        }
        default:
            return false;
    }
}

}  // namespace

ParseResult parse_ipv4(PacketView& v, bool verify_ip_checksum, bool accept_fragments) {
    if (v.frame_len < v.l3_off || v.frame_len - v.l3_off < kIpv4MinHeader)
        return drop(DropReason::Ipv4TooShort);
    const uint32_t avail = v.frame_len - v.l3_off;
    const uint8_t* ip = v.frame + v.l3_off;
    if ((ip[0] >> 4) != 4) return drop(DropReason::Ipv4BadVersion);
    const uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < kIpv4MinHeader || ihl > avail) return drop(DropReason::Ipv4BadIhl);
    const uint32_t total = load_be16(ip + ipv4_off::kTotalLen);
    if (total < ihl || total > avail) return drop(DropReason::Ipv4BadTotalLength);
    if (verify_ip_checksum && csum::fold(csum::partial(ip, ihl)) != 0xffff)
        return drop(DropReason::Ipv4BadChecksum);
    const bool fragment = is_fragment(ip);
    if (fragment && !accept_fragments) return drop(DropReason::Ipv4Fragment);

    v.l3_len = total;
    v.l4_off = v.l3_off + ihl;
    v.l4_len = total - ihl;
    v.proto = ip[ipv4_off::kProto];
    const uint8_t* l4 = v.frame + v.l4_off;
    if (fragment) {
        const uint16_t frag = load_be16(ip + ipv4_off::kFrag);
        v.fragment = true;
        v.more_fragments = (frag & 0x2000) != 0;
        v.frag_offset = (frag & 0x1fffu) * 8u;
        if (v.frag_offset != 0) {
            // No L4 header in a later fragment: nothing more to parse.
            if (!translatable_proto(v.proto)) return drop(DropReason::UnsupportedProtocol);
            return {FrameClass::Ipv4, DropReason::Count};
        }
    }

    switch (v.proto) {
        case kProtoTcp: {
            if (v.l4_len < kTcpMinHeader) return drop(DropReason::TcpTooShort);
            const uint32_t doff = (l4[l4_off::kTcpDataOff] >> 4) * 4u;
            if (doff < kTcpMinHeader || doff > v.l4_len) return drop(DropReason::TcpBadDataOffset);
            v.tcp_flags = l4[l4_off::kTcpFlags];
            return {FrameClass::Ipv4, DropReason::Count};
        }
        case kProtoUdp: {
            if (v.l4_len < kUdpHeader) return drop(DropReason::UdpTooShort);
            const uint32_t ulen = load_be16(l4 + l4_off::kUdpLen);
            // A first fragment carries only the start of the datagram the length describes.
            if (ulen < kUdpHeader || (fragment ? ulen < v.l4_len : ulen > v.l4_len))
                return drop(DropReason::UdpBadLength);
            return {FrameClass::Ipv4, DropReason::Count};
        }
        case kProtoIcmp: {
            if (v.l4_len < kIcmpHeader) return drop(DropReason::IcmpTooShort);
            switch (l4[l4_off::kIcmpType]) {
                case kIcmpEchoRequest:
                case kIcmpEchoReply:
                    v.icmp = IcmpKind::Echo;
                    return {FrameClass::Ipv4, DropReason::Count};
                case kIcmpDestUnreachable:
                case kIcmpTimeExceeded:
                case kIcmpParameterProblem:
                    v.icmp = IcmpKind::Error;
                    if (!parse_inner(v)) return drop(DropReason::IcmpErrorBadInner);
                    return {FrameClass::Ipv4, DropReason::Count};
                default:
                    return drop(DropReason::IcmpUnsupportedType);
            }
        }
        default:
            return drop(DropReason::UnsupportedProtocol);
    }
}

ParseResult parse_frame(uint8_t* frame, uint32_t len, PacketView& v, bool verify_ip_checksum,
                        bool accept_fragments) {
    v = PacketView{};
    v.frame = frame;
    v.frame_len = len;
    if (len < kEthHeaderLen) return drop(DropReason::FrameTooShort);
    uint16_t type = load_be16(frame + 12);
    uint32_t off = kEthHeaderLen;
    if (type == kEtherTypeVlan) {
        if (len < kEthHeaderLen + kVlanTagLen) return drop(DropReason::VlanTooShort);
        v.vlan = true;
        v.vlan_tci = load_be16(frame + 14);
        type = load_be16(frame + 16);
        off += kVlanTagLen;
    }
    if (type == kEtherTypeArp) return {FrameClass::Arp, DropReason::Count};
    if (type != kEtherTypeIpv4) return drop(DropReason::UnknownEthertype);
    v.l3_off = off;
    return parse_ipv4(v, verify_ip_checksum, accept_fragments);
}

}  // namespace snatgw
