// Bounds-checked parsing of Ethernet / 802.1Q / IPv4 / TCP / UDP / ICMP over a contiguous byte
// buffer. Nothing here touches DPDK: the engine, its unit tests and the fuzzers all use it.
//
// parse_frame() checks every length before it reads a byte and either fills a PacketView with
// offsets into the buffer or returns the one DropReason that describes what is wrong.
#pragma once

#include <cstdint>
#include <optional>

#include "drop_reasons.h"

namespace snatgw {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParameterProblem = 12;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// Fixed header offsets within their headers.
namespace ipv4_off {
inline constexpr uint32_t kTotalLen = 2, kId = 4, kFrag = 6, kTtl = 8, kProto = 9, kCsum = 10,
                          kSrc = 12, kDst = 16;
}
namespace l4_off {
inline constexpr uint32_t kSport = 0, kDport = 2;
inline constexpr uint32_t kTcpSeq = 4, kTcpAck = 8, kTcpDataOff = 12, kTcpFlags = 13,
                          kTcpWindow = 14, kTcpCsum = 16;
inline constexpr uint32_t kUdpLen = 4, kUdpCsum = 6;
inline constexpr uint32_t kIcmpType = 0, kIcmpCode = 1, kIcmpCsum = 2, kIcmpId = 4,
                          kIcmpSeq = 6;
}  // namespace l4_off

inline constexpr uint32_t kEthHeaderLen = 14;
inline constexpr uint32_t kVlanTagLen = 4;
inline constexpr uint32_t kIpv4MinHeader = 20;
inline constexpr uint32_t kTcpMinHeader = 20;
inline constexpr uint32_t kUdpHeader = 8;
inline constexpr uint32_t kIcmpHeader = 8;

// What the ICMP message is, for the NAT.
enum class IcmpKind : uint8_t { NotIcmp, Echo, Error };

// The packet embedded in an ICMP error: the original datagram's IP header and the first bytes
// of its L4 header (at least the 8 bytes RFC 792 guarantees).
struct InnerView {
    uint32_t l3_off = 0;    // offset of the embedded IPv4 header in the frame
    uint32_t l4_off = 0;    // offset of the embedded L4 header
    uint32_t l4_avail = 0;  // bytes of embedded L4 present (>= 8)
    uint8_t proto = 0;
    IcmpKind icmp = IcmpKind::NotIcmp;  // embedded ICMP: only echo is translatable
};

// Offsets and decoded fields of a parsed frame. Multi-byte fields stay in the frame; helpers
// below read them in wire order.
struct PacketView {
    uint8_t* frame = nullptr;
    uint32_t frame_len = 0;
    uint32_t l3_off = 0;      // IPv4 header
    uint32_t l4_off = 0;      // TCP/UDP/ICMP header
    uint32_t l3_len = 0;      // IPv4 total length (bytes of IP packet, excludes L2 padding)
    uint32_t l4_len = 0;      // bytes from l4_off to the end of the IP packet
    uint8_t proto = 0;
    uint8_t tcp_flags = 0;
    uint16_t vlan_tci = 0;    // 0 when untagged
    bool vlan = false;
    IcmpKind icmp = IcmpKind::NotIcmp;
    InnerView inner;          // valid when icmp == Error
    // IPv4 fragments (only with accept_fragments): a first fragment (offset 0, MF) is parsed
    // like a whole packet, except that its L4 header describes more bytes than it carries; a
    // later fragment has no L4 header: l4_off/l4_len are its payload, the L4 fields unset.
    bool fragment = false;
    bool more_fragments = false;
    uint32_t frag_offset = 0;  // bytes

    uint8_t* l3() const { return frame + l3_off; }
    uint8_t* l4() const { return frame + l4_off; }
    bool later_fragment() const { return fragment && frag_offset != 0; }
};

// What parse_frame found, for non-IPv4 frames the caller may want (ARP).
enum class FrameClass : uint8_t { Ipv4, Arp, Dropped };

struct ParseResult {
    FrameClass cls = FrameClass::Dropped;
    DropReason reason = DropReason::FrameTooShort;  // valid when cls == Dropped
};

// Parses an Ethernet frame. verify_ip_checksum: drop IPv4 headers whose checksum is wrong
// (a router must, RFC 1812 5.2.2). accept_fragments: parse IPv4 fragments (see PacketView)
// instead of dropping them as Ipv4Fragment.
ParseResult parse_frame(uint8_t* frame, uint32_t len, PacketView& view,
                        bool verify_ip_checksum = true, bool accept_fragments = false);

// Parses the IPv4 packet at view.l3_off (used by parse_frame and by the ICMP-error path).
ParseResult parse_ipv4(PacketView& view, bool verify_ip_checksum, bool accept_fragments = false);

}  // namespace snatgw
