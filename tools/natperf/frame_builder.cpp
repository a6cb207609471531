// Building and parsing natperf's test frames; see frame_builder.h.
#include "frame_builder.h"

#include <cstring>

#include "byte_order.h"
#include "checksum.h"

namespace natperf {

using snatgw::load_be16;
using snatgw::load_be32;
using snatgw::store_be16;
using snatgw::store_be32;

namespace {

constexpr uint16_t kEtherIpv4 = 0x0800, kEtherArp = 0x0806;
constexpr uint8_t kTcpSyn = 0x02, kTcpAck = 0x10;

// One's-complement sum of the IPv4 pseudo-header (raw wire words, like checksum.h).
uint32_t pseudo_header_sum(const uint8_t* ip, uint8_t proto, uint16_t l4_len) {
    uint8_t ph[12];
    std::memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = proto;
    store_be16(ph + 10, l4_len);
    return snatgw::csum::partial(ph, sizeof ph);
}

}  // namespace

uint32_t frame_length(const FrameSpec& spec) {
    return spec.proto == Proto::Tcp ? kMinFrameLen : spec.frame_len;
}

uint32_t build_frame(uint8_t* out, uint32_t cap, const FrameSpec& spec) {
    const uint32_t len = frame_length(spec);
    if (len < kMinFrameLen || len > kMaxFrameLen || cap < len) return 0;
    const bool tcp = spec.proto == Proto::Tcp;
    const uint32_t l4_hdr = tcp ? kTcpLen : kUdpLen;
    // UDP: the datagram fills the frame; TCP: header only, the rest is Ethernet padding.
    const uint32_t ip_total = tcp ? kIpLen + kTcpLen : len - kEthLen;
    const uint32_t l4_len = ip_total - kIpLen;
    std::memset(out, 0, len);

    std::memcpy(out, spec.dst_mac.data(), 6);
    std::memcpy(out + 6, spec.src_mac.data(), 6);
    store_be16(out + 12, kEtherIpv4);

    uint8_t* ip = out + kEthLen;
    ip[0] = 0x45;
    store_be16(ip + 2, static_cast<uint16_t>(ip_total));
    store_be16(ip + 4, spec.ip_id);
    ip[8] = 64;  // TTL
    ip[9] = static_cast<uint8_t>(spec.proto);
    store_be32(ip + 12, spec.src_ip);
    store_be32(ip + 16, spec.dst_ip);
    snatgw::csum::store16(ip + 10, snatgw::csum::compute(ip, kIpLen));

    uint8_t* l4 = ip + kIpLen;
    store_be16(l4, spec.src_port);
    store_be16(l4 + 2, spec.dst_port);
    uint32_t covered = l4_hdr;  // bytes that can be non-zero (the rest adds nothing to the sum)
    if (tcp) {
        const bool synack = spec.kind == Kind::Validation || spec.kind == Kind::Reverse;
        store_be32(l4 + 4, synack ? kTcpServerIsn : spec.index);
        store_be32(l4 + 8, synack ? spec.index + 1 : 0);
        l4[12] = 5 << 4;
        l4[13] = synack ? (kTcpSyn | kTcpAck) : kTcpSyn;
        store_be16(l4 + 14, 65535);  // window
    } else {
        store_be16(l4 + 4, static_cast<uint16_t>(l4_len));
        uint8_t* p = l4 + kUdpLen;
        store_be16(p, kMagic);
        p[2] = static_cast<uint8_t>(spec.kind);
        p[3] = spec.flags;
        store_be32(p + 4, spec.index);
        store_be32(p + 8, static_cast<uint32_t>(spec.tsc >> 32));
        store_be32(p + 12, static_cast<uint32_t>(spec.tsc));
        covered += kPayloadLen;
    }
    uint32_t sum = pseudo_header_sum(ip, static_cast<uint8_t>(spec.proto), static_cast<uint16_t>(l4_len));
    uint16_t check = snatgw::csum::finish(snatgw::csum::partial(l4, covered, sum));
    if (!tcp && check == 0) check = 0xffff;  // UDP: 0 means "no checksum"
    snatgw::csum::store16(l4 + (tcp ? 16 : 6), check);
    return len;
}

ParseStatus parse_frame(const uint8_t* f, uint32_t len, ParsedFrame& out) {
    if (len < kEthLen) return ParseStatus::Malformed;
    const uint16_t ethertype = load_be16(f + 12);
    if (ethertype == kEtherArp) return ParseStatus::Arp;
    if (ethertype != kEtherIpv4) return ParseStatus::Foreign;
    if (len < kEthLen + kIpLen) return ParseStatus::Malformed;
    const uint8_t* ip = f + kEthLen;
    if ((ip[0] >> 4) != 4) return ParseStatus::Malformed;
    const uint32_t ihl = (ip[0] & 0x0f) * 4u;
    const uint32_t total = load_be16(ip + 2);
    if (ihl < kIpLen || total < ihl || kEthLen + total > len) return ParseStatus::Malformed;
    if ((load_be16(ip + 6) & 0x3fff) != 0) return ParseStatus::Foreign;  // a fragment
    const uint8_t proto = ip[9];
    const uint8_t* l4 = ip + ihl;
    const uint32_t l4_len = total - ihl;
    std::memcpy(out.dst_mac.data(), f, 6);
    std::memcpy(out.src_mac.data(), f + 6, 6);
    out.src_ip = load_be32(ip + 12);
    out.dst_ip = load_be32(ip + 16);
    if (proto == static_cast<uint8_t>(Proto::Udp)) {
        if (l4_len < kUdpLen) return ParseStatus::Malformed;
        const uint32_t udp_len = load_be16(l4 + 4);
        if (udp_len < kUdpLen || udp_len > l4_len) return ParseStatus::Malformed;
        if (udp_len < kUdpLen + kPayloadLen) return ParseStatus::Foreign;
        const uint8_t* p = l4 + kUdpLen;
        if (load_be16(p) != kMagic) return ParseStatus::Foreign;
        if (p[2] < static_cast<uint8_t>(Kind::Phase1) || p[2] > static_cast<uint8_t>(Kind::Validation))
            return ParseStatus::Foreign;
        out.proto = Proto::Udp;
        out.kind = static_cast<Kind>(p[2]);
        out.flags = p[3];
        out.index = load_be32(p + 4);
        out.tsc = (uint64_t{load_be32(p + 8)} << 32) | load_be32(p + 12);
    } else if (proto == static_cast<uint8_t>(Proto::Tcp)) {
        if (l4_len < kTcpLen) return ParseStatus::Malformed;
        const uint8_t flags = l4[13] & 0x3f;
        out.proto = Proto::Tcp;
        out.flags = 0;
        out.tsc = 0;
        if (flags == kTcpSyn) {
            out.kind = Kind::Phase1;
            out.index = load_be32(l4 + 4);
        } else if (flags == (kTcpSyn | kTcpAck) && load_be32(l4 + 4) == kTcpServerIsn) {
            out.kind = Kind::Validation;
            out.index = load_be32(l4 + 8) - 1;
        } else {
            return ParseStatus::Foreign;
        }
    } else {
        return ParseStatus::Foreign;
    }
    out.src_port = load_be16(l4);
    out.dst_port = load_be16(l4 + 2);
    return ParseStatus::Ours;
}

}  // namespace natperf
