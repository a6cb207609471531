// Echo replies, ICMP errors and their rate limit; see local_icmp.h.
#include "local_icmp.h"

#include <algorithm>
#include <cstring>

#include "byte_order.h"
#include "checksum.h"
#include "packet_view.h"

namespace snatgw {

namespace {

constexpr uint8_t kReplyTtl = 64;
constexpr uint8_t kIcmpErrorTos = 0xc0;  // precedence "internetwork control" (RFC 1812 4.3.2.5)

// Addresses that must never be the destination of our replies or errors.
bool bad_source(uint32_t ip) {
    const uint32_t top = ip >> 24;
    return ip == 0 || ip == 0xffffffffu || top == 127 || top == 0 || (ip >> 28) >= 0xe;
}

bool is_multicast_or_broadcast(uint32_t ip) { return ip == 0xffffffffu || (ip >> 28) == 0xe; }

// ICMP types that are queries or replies; every other type counts as an error (as Linux does
// for unknown types), and errors are never answered with errors.
bool is_icmp_query(uint8_t type) {
    switch (type) {
        case 0: case 8:    // echo
        case 9: case 10:   // router advertisement / solicitation
        case 13: case 14:  // timestamp
        case 15: case 16:  // information
        case 17: case 18:  // address mask
            return true;
        default:
            return false;
    }
}

// Writes a 20-byte IPv4 header with a full checksum.
void write_ipv4_header(uint8_t* ip, uint8_t tos, uint16_t total, uint16_t id, uint8_t ttl,
                       uint8_t proto, uint32_t src, uint32_t dst) {
    ip[0] = 0x45;
    ip[1] = tos;
    store_be16(ip + ipv4_off::kTotalLen, total);
    store_be16(ip + ipv4_off::kId, id);
    store_be16(ip + ipv4_off::kFrag, 0);
    ip[ipv4_off::kTtl] = ttl;
    ip[ipv4_off::kProto] = proto;
    store_be16(ip + ipv4_off::kCsum, 0);
    store_be32(ip + ipv4_off::kSrc, src);
    store_be32(ip + ipv4_off::kDst, dst);
    csum::store16(ip + ipv4_off::kCsum, csum::compute(ip, kIpv4MinHeader));
}

}  // namespace

uint32_t build_echo_reply(uint8_t* frame, uint32_t len) {
    if (frame == nullptr) return 0;
    PacketView v;
    if (parse_frame(frame, len, v, true).cls != FrameClass::Ipv4) return 0;  // also fragments
    if (v.proto != kProtoIcmp || v.icmp != IcmpKind::Echo) return 0;
    uint8_t* icmp = v.l4();
    if (icmp[l4_off::kIcmpType] != kIcmpEchoRequest || icmp[l4_off::kIcmpCode] != 0) return 0;
    if (csum::fold(csum::partial(icmp, v.l4_len)) != 0xffff) return 0;
    uint8_t* ip = v.l3();
    const uint32_t src = load_be32(ip + ipv4_off::kSrc);
    const uint32_t dst = load_be32(ip + ipv4_off::kDst);
    if (bad_source(src)) return 0;

    // Ethernet: back to where it came from.
    uint8_t mac[6];
    std::memcpy(mac, frame, 6);
    std::memmove(frame, frame + 6, 6);
    std::memcpy(frame + 6, mac, 6);

    // ICMP: type 8 -> 0 (code stays 0). The checksum is recomputed in full: the incremental
    // update (RFC 1624 eqn. 3) yields 0x0000 instead of 0xffff for an all-zero reply (id 0,
    // seq 0, no data), which receivers reject.
    icmp[l4_off::kIcmpType] = kIcmpEchoReply;
    csum::store16(icmp + l4_off::kIcmpCsum, 0);
    csum::store16(icmp + l4_off::kIcmpCsum, csum::compute(icmp, v.l4_len));

    // IP: options are not echoed (record route and friends would need processing); the ICMP
    // message moves up behind a plain 20-byte header.
    const uint32_t ihl = v.l4_off - v.l3_off;
    if (ihl > kIpv4MinHeader) std::memmove(ip + kIpv4MinHeader, icmp, v.l4_len);
    const uint32_t total = kIpv4MinHeader + v.l4_len;
    write_ipv4_header(ip, ip[1], static_cast<uint16_t>(total), load_be16(ip + ipv4_off::kId),
                      kReplyTtl, kProtoIcmp, dst, src);
    return v.l3_off + total;
}

uint32_t build_icmp_error(uint8_t* out, uint32_t cap, const uint8_t* orig_frame, uint32_t orig_len,
                          uint8_t type, uint8_t code, uint32_t our_ip, const MacAddr& our_mac,
                          const MacAddr& dst_mac, uint32_t rest_of_header) {
    if (out == nullptr || orig_frame == nullptr || orig_len < kEthHeaderLen) return 0;

    // The original: Ethernet [+ tag] + a sane IPv4 header.
    uint32_t l3 = kEthHeaderLen;
    uint16_t ethertype = load_be16(orig_frame + 12);
    const bool vlan = ethertype == kEtherTypeVlan;
    uint16_t tci = 0;
    if (vlan) {
        if (orig_len < kEthHeaderLen + kVlanTagLen) return 0;
        tci = load_be16(orig_frame + 14);
        ethertype = load_be16(orig_frame + 16);
        l3 += kVlanTagLen;
    }
    if (ethertype != kEtherTypeIpv4 || orig_len - l3 < kIpv4MinHeader) return 0;
    const uint8_t* oip = orig_frame + l3;
    const uint32_t avail = orig_len - l3;
    if ((oip[0] >> 4) != 4) return 0;
    const uint32_t ihl = (oip[0] & 0x0f) * 4u;
    const uint32_t total = load_be16(oip + ipv4_off::kTotalLen);
    if (ihl < kIpv4MinHeader || ihl > avail || total < ihl || total > avail) return 0;
    if (csum::fold(csum::partial(oip, ihl)) != 0xffff) return 0;  // it would have been dropped

    // RFC 1812 4.3.2.7: when not to send an error.
    if ((load_be16(oip + ipv4_off::kFrag) & 0x1fff) != 0) return 0;  // not the first fragment
    const uint32_t osrc = load_be32(oip + ipv4_off::kSrc);
    const uint32_t odst = load_be32(oip + ipv4_off::kDst);
    if (bad_source(osrc) || is_multicast_or_broadcast(odst)) return 0;
    if (oip[ipv4_off::kProto] == kProtoIcmp) {
        if (total == ihl || !is_icmp_query(oip[ihl])) return 0;  // an error (or no header at all)
    }

    // The new frame.
    const uint32_t quote = std::min(total, kIcmpErrorMaxIpLen - kIpv4MinHeader - kIcmpHeader);
    const uint32_t l2 = kEthHeaderLen + (vlan ? kVlanTagLen : 0);
    const uint32_t ip_len = kIpv4MinHeader + kIcmpHeader + quote;
    const uint32_t frame_len = std::max(l2 + ip_len, 60u);
    if (cap < frame_len) return 0;
    std::memset(out, 0, frame_len);
    std::memcpy(out, dst_mac.data(), 6);
    std::memcpy(out + 6, our_mac.data(), 6);
    if (vlan) {
        store_be16(out + 12, kEtherTypeVlan);
        store_be16(out + 14, tci);
    }
    store_be16(out + l2 - 2, kEtherTypeIpv4);

    uint8_t* ip = out + l2;
    write_ipv4_header(ip, kIcmpErrorTos, static_cast<uint16_t>(ip_len), 0, kReplyTtl, kProtoIcmp,
                      our_ip, osrc);
    uint8_t* icmp = ip + kIpv4MinHeader;
    icmp[l4_off::kIcmpType] = type;
    icmp[l4_off::kIcmpCode] = code;
    store_be32(icmp + 4, rest_of_header);
    std::memcpy(icmp + kIcmpHeader, oip, quote);
    csum::store16(icmp + l4_off::kIcmpCsum, csum::compute(icmp, kIcmpHeader + quote));
    return frame_len;
}

TokenBucket::TokenBucket(uint32_t rate_per_s, uint32_t burst)
    : rate_(rate_per_s), cap_milli_(uint64_t{burst} * 1000), milli_(cap_milli_) {}

bool TokenBucket::take(uint64_t now_ms) {
    if (!started_) {
        started_ = true;
        last_ms_ = now_ms;
    } else if (now_ms > last_ms_) {
        const uint64_t dt = now_ms - last_ms_;
        last_ms_ = now_ms;
        // Refill without overflow: a long pause just fills the bucket.
        if (rate_ != 0) {
            const uint64_t room = cap_milli_ - milli_;
            milli_ = dt >= room / rate_ + 1 ? cap_milli_ : std::min(cap_milli_, milli_ + dt * rate_);
        }
    }
    if (milli_ < 1000) return false;
    milli_ -= 1000;
    return true;
}

}  // namespace snatgw
