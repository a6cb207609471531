// Minimal 64-byte test frames for the engine benchmark (Ethernet + IPv4 + TCP/UDP, valid
// checksums), written straight into caller-provided buffers.
#pragma once

#include <cstdint>
#include <cstring>

#include "byte_order.h"
#include "checksum.h"
#include "packet_view.h"

namespace snatgw::bench {

inline constexpr uint32_t kFrameLen = 64;  // Ethernet minimum without FCS is 60; 64 with it

struct FrameSpec {
    uint32_t src, dst;  // host order
    uint16_t sport, dport;
    uint8_t proto;      // kProtoTcp or kProtoUdp
    uint8_t tcp_flags = kTcpAck;
    uint32_t seq = 1, ack = 1;
    uint16_t window = 65535;
};

// Writes a kFrameLen-byte frame. Payload fills what the headers leave.
inline void write_frame(uint8_t* f, const FrameSpec& s) {
    std::memset(f, 0, kFrameLen);
    const uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x02}, src_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(f, dst_mac, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, kEtherTypeIpv4);
    uint8_t* ip = f + kEthHeaderLen;
    const uint32_t l4_len = kFrameLen - kEthHeaderLen - kIpv4MinHeader;
    ip[0] = 0x45;
    store_be16(ip + ipv4_off::kTotalLen, static_cast<uint16_t>(kIpv4MinHeader + l4_len));
    ip[ipv4_off::kTtl] = 64;
    ip[ipv4_off::kProto] = s.proto;
    store_be32(ip + ipv4_off::kSrc, s.src);
    store_be32(ip + ipv4_off::kDst, s.dst);
    csum::store16(ip + ipv4_off::kCsum, csum::compute(ip, kIpv4MinHeader));

    uint8_t* l4 = ip + kIpv4MinHeader;
    store_be16(l4 + l4_off::kSport, s.sport);
    store_be16(l4 + l4_off::kDport, s.dport);
    uint32_t csum_off;
    if (s.proto == kProtoTcp) {
        store_be32(l4 + l4_off::kTcpSeq, s.seq);
        store_be32(l4 + l4_off::kTcpAck, s.ack);
        l4[l4_off::kTcpDataOff] = 5 << 4;
        l4[l4_off::kTcpFlags] = s.tcp_flags;
        store_be16(l4 + l4_off::kTcpWindow, s.window);
        csum_off = l4_off::kTcpCsum;
    } else {
        store_be16(l4 + l4_off::kUdpLen, static_cast<uint16_t>(l4_len));
        csum_off = l4_off::kUdpCsum;
    }
    // Pseudo-header: addresses, protocol, L4 length.
    uint8_t pseudo[12];
    std::memcpy(pseudo, ip + ipv4_off::kSrc, 8);
    pseudo[8] = 0;
    pseudo[9] = s.proto;
    store_be16(pseudo + 10, static_cast<uint16_t>(l4_len));
    uint16_t c = csum::finish(csum::partial(l4, l4_len, csum::partial(pseudo, 12)));
    if (c == 0 && s.proto == kProtoUdp) c = 0xffff;
    csum::store16(l4 + csum_off, c);
}

}  // namespace snatgw::bench
