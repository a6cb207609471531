// ARP parsing, frame building and the per-port responder; see arp.h.
#include "arp.h"

#include <algorithm>
#include <cstring>

#include "byte_order.h"
#include "packet_view.h"

namespace snatgw {

namespace {

constexpr uint16_t kArpHtypeEthernet = 1;
constexpr uint8_t kArpHlenEthernet = 6;
constexpr uint8_t kArpPlenIpv4 = 4;

// Offsets within the ARP payload.
namespace arp_off {
constexpr uint32_t kHtype = 0, kPtype = 2, kHlen = 4, kPlen = 5, kOp = 6, kSha = 8, kSpa = 14,
                   kTha = 18, kTpa = 24;
}

MacAddr load_mac(const uint8_t* p) {
    MacAddr m;
    std::memcpy(m.data(), p, m.size());
    return m;
}

void store_mac(uint8_t* p, const MacAddr& m) { std::memcpy(p, m.data(), m.size()); }

// Writes a complete ARP frame (Ethernet [+ tag] + payload, zero padded). 0 if cap is too small.
uint32_t write_frame(uint8_t* out, uint32_t cap, const MacAddr& eth_dst, const MacAddr& eth_src,
                     bool vlan, uint16_t vlan_tci, uint16_t op, const MacAddr& sha, uint32_t spa,
                     const MacAddr& tha, uint32_t tpa) {
    const uint32_t l2 = kEthHeaderLen + (vlan ? kVlanTagLen : 0);
    const uint32_t len = std::max(l2 + kArpPayloadLen, kArpFrameLen);
    if (out == nullptr || cap < len) return 0;
    std::memset(out, 0, len);
    store_mac(out, eth_dst);
    store_mac(out + 6, eth_src);
    uint32_t off = 12;
    if (vlan) {
        store_be16(out + off, kEtherTypeVlan);
        store_be16(out + off + 2, vlan_tci);
        off += kVlanTagLen;
    }
    store_be16(out + off, kEtherTypeArp);
    uint8_t* a = out + off + 2;
    store_be16(a + arp_off::kHtype, kArpHtypeEthernet);
    store_be16(a + arp_off::kPtype, kEtherTypeIpv4);
    a[arp_off::kHlen] = kArpHlenEthernet;
    a[arp_off::kPlen] = kArpPlenIpv4;
    store_be16(a + arp_off::kOp, op);
    store_mac(a + arp_off::kSha, sha);
    store_be32(a + arp_off::kSpa, spa);
    store_mac(a + arp_off::kTha, tha);
    store_be32(a + arp_off::kTpa, tpa);
    return len;
}

bool is_special_ipv4(uint32_t ip) {
    return ip == 0 || ip == 0xffffffffu || (ip >> 28) == 0xe;  // any, broadcast, multicast
}

}  // namespace

std::string format_mac(const MacAddr& mac) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    s.reserve(17);
    for (std::size_t i = 0; i < mac.size(); ++i) {
        if (i != 0) s += ':';
        s += kHex[mac[i] >> 4];
        s += kHex[mac[i] & 0x0f];
    }
    return s;
}

bool is_unicast_mac(const MacAddr& mac) { return (mac[0] & 0x01) == 0 && mac != kZeroMac; }

std::optional<ArpPacket> parse_arp(const uint8_t* frame, uint32_t len) {
    if (frame == nullptr || len < kEthHeaderLen) return std::nullopt;
    ArpPacket p;
    uint32_t off = 12;
    uint16_t type = load_be16(frame + off);
    if (type == kEtherTypeVlan) {
        if (len < kEthHeaderLen + kVlanTagLen) return std::nullopt;
        p.vlan = true;
        p.vlan_tci = load_be16(frame + off + 2);
        off += kVlanTagLen;
        type = load_be16(frame + off);
    }
    if (type != kEtherTypeArp) return std::nullopt;
    off += 2;
    if (len - off < kArpPayloadLen) return std::nullopt;
    const uint8_t* a = frame + off;
    if (load_be16(a + arp_off::kHtype) != kArpHtypeEthernet ||
        load_be16(a + arp_off::kPtype) != kEtherTypeIpv4 || a[arp_off::kHlen] != kArpHlenEthernet ||
        a[arp_off::kPlen] != kArpPlenIpv4)
        return std::nullopt;
    p.op = load_be16(a + arp_off::kOp);
    if (p.op != kArpOpRequest && p.op != kArpOpReply) return std::nullopt;
    p.sender_mac = load_mac(a + arp_off::kSha);
    p.sender_ip = load_be32(a + arp_off::kSpa);
    p.target_mac = load_mac(a + arp_off::kTha);
    p.target_ip = load_be32(a + arp_off::kTpa);
    return p;
}

bool arp_sender_learnable(const ArpPacket& packet) {
    return !is_special_ipv4(packet.sender_ip) && is_unicast_mac(packet.sender_mac);
}

uint32_t build_arp_reply(uint8_t* out, uint32_t cap, const ArpPacket& request, const MacAddr& our_mac) {
    return write_frame(out, cap, request.sender_mac, our_mac, request.vlan, request.vlan_tci,
                       kArpOpReply, our_mac, request.target_ip, request.sender_mac,
                       request.sender_ip);
}

uint32_t build_arp_request(uint8_t* out, uint32_t cap, const MacAddr& our_mac, uint32_t our_ip,
                           uint32_t target_ip) {
    return write_frame(out, cap, kBroadcastMac, our_mac, false, 0, kArpOpRequest, our_mac, our_ip,
                       kZeroMac, target_ip);
}

uint32_t build_gratuitous_arp(uint8_t* out, uint32_t cap, const MacAddr& our_mac, uint32_t our_ip) {
    return build_arp_request(out, cap, our_mac, our_ip, our_ip);
}

ArpResponder::ArpResponder(const MacAddr& mac, const std::vector<uint32_t>& addresses) : mac_(mac) {
    for (uint32_t ip : addresses) add(ip);
}

void ArpResponder::add(uint32_t ip) {
    const auto it = std::lower_bound(addresses_.begin(), addresses_.end(), ip);
    if (it == addresses_.end() || *it != ip) addresses_.insert(it, ip);
}

bool ArpResponder::answers_for(uint32_t ip) const {
    return std::binary_search(addresses_.begin(), addresses_.end(), ip);
}

bool ArpResponder::should_reply(const ArpPacket& packet) const {
    if (packet.op != kArpOpRequest || !answers_for(packet.target_ip)) return false;
    if (!is_unicast_mac(packet.sender_mac) || packet.sender_mac == mac_) return false;
    // Someone announcing (or claiming) our own address: not a question.
    if (packet.sender_ip == packet.target_ip) return false;
    // Probes come from 0.0.0.0 (RFC 5227); other special senders are bogus.
    return packet.sender_ip == 0 || !is_special_ipv4(packet.sender_ip);
}

uint32_t ArpResponder::reply(const ArpPacket& packet, uint8_t* out, uint32_t cap) const {
    if (!should_reply(packet)) return 0;
    return build_arp_reply(out, cap, packet, mac_);
}

}  // namespace snatgw
