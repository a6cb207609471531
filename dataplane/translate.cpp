// NAT header rewriting; see translate.h.
#include "translate.h"

#include "checksum.h"

namespace snatgw {

namespace {

using csum::load16;
using csum::load32;
using csum::store16;
using csum::store32;

// Where the "port" of an L4 header sits and where its checksum is.
struct L4Layout {
    uint32_t src_port_off;
    uint32_t dst_port_off;
    uint32_t csum_off;
    bool pseudo_header;  // checksum covers the IP addresses
    bool zero_means_none;  // UDP
};

L4Layout layout_of(uint8_t proto) {
    switch (proto) {
        case kProtoTcp:
            return {l4_off::kSport, l4_off::kDport, l4_off::kTcpCsum, true, false};
        case kProtoUdp:
            return {l4_off::kSport, l4_off::kDport, l4_off::kUdpCsum, true, true};
        default:  // ICMP echo: the identifier plays both ports
            return {l4_off::kIcmpId, l4_off::kIcmpId, l4_off::kIcmpCsum, false, false};
    }
}

// Rewrites one (address, port) pair of a packet: the address at l3 + addr_off and the port at
// l4 + port_off, fixing the IP header checksum and the L4 checksum (if present in `l4_avail`).
// `outer_csum` (may be null) is an enclosing checksum (the ICMP error's) that covers the
// rewritten bytes of this packet: every 16-bit word change is folded into it too.
void rewrite_pair(uint8_t* l3, uint8_t* l4, uint32_t l4_avail, uint8_t proto, uint32_t addr_off,
                  bool src_side, uint32_t addr, uint16_t port, uint8_t* outer_csum) {
    const L4Layout lay = layout_of(proto);
    const uint32_t port_off = src_side ? lay.src_port_off : lay.dst_port_off;

    const uint32_t old_addr = load32(l3 + addr_off);
    const uint16_t old_ip_csum = load16(l3 + ipv4_off::kCsum);
    const uint16_t new_ip_csum = csum::update32(old_ip_csum, old_addr, addr);
    store32(l3 + addr_off, addr);
    store16(l3 + ipv4_off::kCsum, new_ip_csum);

    const uint16_t old_port = load16(l4 + port_off);
    store16(l4 + port_off, port);

    uint16_t old_l4_csum = 0, new_l4_csum = 0;
    const bool have_csum = lay.csum_off + 2 <= l4_avail;
    if (have_csum) {
        old_l4_csum = load16(l4 + lay.csum_off);
        new_l4_csum = old_l4_csum;
        if (!(lay.zero_means_none && old_l4_csum == 0)) {
            if (lay.pseudo_header) new_l4_csum = csum::update32(new_l4_csum, old_addr, addr);
            new_l4_csum = csum::update16(new_l4_csum, old_port, port);
            // 0xffff is always a valid zero: UDP must not send 0x0000 (no checksum), and an
            // all-zero ICMP message (echo id 0, seq 0, no data) only verifies with 0xffff,
            // which RFC 1624's eqn. 3 does not produce.
            if ((lay.zero_means_none || !lay.pseudo_header) && new_l4_csum == 0)
                new_l4_csum = 0xffff;
            store16(l4 + lay.csum_off, new_l4_csum);
        }
    }

    if (outer_csum != nullptr) {
        uint16_t c = load16(outer_csum);
        c = csum::update32(c, old_addr, addr);
        c = csum::update16(c, old_ip_csum, new_ip_csum);
        c = csum::update16(c, old_port, port);
        if (have_csum) c = csum::update16(c, old_l4_csum, new_l4_csum);
        store16(outer_csum, c);
    }
}

// Changes only the outer IPv4 address (no port): the outer header of an ICMP error.
void rewrite_outer_address(uint8_t* l3, uint32_t addr_off, uint32_t addr) {
    const uint32_t old_addr = load32(l3 + addr_off);
    store16(l3 + ipv4_off::kCsum, csum::update32(load16(l3 + ipv4_off::kCsum), old_addr, addr));
    store32(l3 + addr_off, addr);
}

}  // namespace

void rewrite_source(const PacketView& v, uint32_t addr, uint16_t port) {
    rewrite_pair(v.l3(), v.l4(), v.l4_len, v.proto, ipv4_off::kSrc, true, addr, port, nullptr);
}

void rewrite_destination(const PacketView& v, uint32_t addr, uint16_t port) {
    rewrite_pair(v.l3(), v.l4(), v.l4_len, v.proto, ipv4_off::kDst, false, addr, port, nullptr);
}

void rewrite_icmp_error_from_inside(const PacketView& v, uint32_t addr, uint16_t port) {
    // The ICMP checksum has no pseudo-header: the outer address change does not touch it.
    rewrite_outer_address(v.l3(), ipv4_off::kSrc, addr);
    const InnerView& in = v.inner;
    rewrite_pair(v.frame + in.l3_off, v.frame + in.l4_off, in.l4_avail, in.proto, ipv4_off::kDst,
                 false, addr, port, v.l4() + l4_off::kIcmpCsum);
}

void rewrite_icmp_error_from_outside(const PacketView& v, uint32_t addr, uint16_t port) {
    rewrite_outer_address(v.l3(), ipv4_off::kDst, addr);
    const InnerView& in = v.inner;
    rewrite_pair(v.frame + in.l3_off, v.frame + in.l4_off, in.l4_avail, in.proto, ipv4_off::kSrc,
                 true, addr, port, v.l4() + l4_off::kIcmpCsum);
}

void decrement_ttl(const PacketView& v) {
    uint8_t* ip = v.l3();
    // TTL and protocol share one 16-bit word of the header.
    const uint16_t old_word = load16(ip + ipv4_off::kTtl);
    ip[ipv4_off::kTtl] = static_cast<uint8_t>(ip[ipv4_off::kTtl] - 1);
    const uint16_t new_word = load16(ip + ipv4_off::kTtl);
    store16(ip + ipv4_off::kCsum, csum::update16(load16(ip + ipv4_off::kCsum), old_word, new_word));
}

}  // namespace snatgw
