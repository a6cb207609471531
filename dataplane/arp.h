// ARP for Ethernet/IPv4 (RFC 826) on plain byte buffers: parse a received ARP frame, build
// replies, requests and gratuitous announcements, and decide which requests the gateway answers
// (its interface address and, on the outside port, the pool addresses).
//
// Runs on the main lcore (control path); nothing here touches DPDK, so it is unit-testable.
// Every length is checked before a byte is read or written. Addresses are host byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace snatgw {

using MacAddr = std::array<uint8_t, 6>;

inline constexpr MacAddr kBroadcastMac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr MacAddr kZeroMac{0, 0, 0, 0, 0, 0};

inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;

// ARP payload for Ethernet/IPv4 (htype, ptype, hlen, plen, op, sha, spa, tha, tpa).
inline constexpr uint32_t kArpPayloadLen = 28;
// Every frame built here is padded to the Ethernet minimum (without FCS).
inline constexpr uint32_t kArpFrameLen = 60;

// "02:00:00:00:00:01"
std::string format_mac(const MacAddr& mac);

// Unicast: not multicast/broadcast (I/G bit clear) and not all zero.
bool is_unicast_mac(const MacAddr& mac);

struct ArpPacket {
    uint16_t op = 0;  // kArpOpRequest or kArpOpReply
    MacAddr sender_mac{};
    uint32_t sender_ip = 0;
    MacAddr target_mac{};
    uint32_t target_ip = 0;
    // The frame's 802.1Q tag, if it had one; replies built from this packet carry the same tag.
    bool vlan = false;
    uint16_t vlan_tci = 0;
};

// An Ethernet frame (optionally with one 802.1Q tag) carrying ARP for Ethernet/IPv4 (htype 1,
// ptype 0x0800, hlen 6, plen 4, op 1 or 2). Anything else, or a frame too short: nullopt.
std::optional<ArpPacket> parse_arp(const uint8_t* frame, uint32_t len);

// Whether the sender's (IP, MAC) pair may go into the neighbour table: a real address (not 0)
// and a unicast MAC. Which senders to learn from (own subnet, only when asked...) is the
// caller's policy.
bool arp_sender_learnable(const ArpPacket& packet);

// The reply to `request` from `our_mac`, claiming request.target_ip, sent to the requester
// (unicast). Tagged like the request. Returns the frame length (kArpFrameLen) or 0 if cap is
// too small.
uint32_t build_arp_reply(uint8_t* out, uint32_t cap, const ArpPacket& request, const MacAddr& our_mac);

// A broadcast who-has target_ip from (our_mac, our_ip). Returns the frame length or 0.
uint32_t build_arp_request(uint8_t* out, uint32_t cap, const MacAddr& our_mac, uint32_t our_ip,
                           uint32_t target_ip);

// Gratuitous ARP (RFC 5227 announcement): a broadcast request with sender = target = our_ip.
// Returns the frame length or 0.
uint32_t build_gratuitous_arp(uint8_t* out, uint32_t cap, const MacAddr& our_mac, uint32_t our_ip);

// Which ARP requests one port answers: the addresses it owns and its MAC.
class ArpResponder {
public:
    ArpResponder() = default;
    ArpResponder(const MacAddr& mac, const std::vector<uint32_t>& addresses);

    void add(uint32_t ip);
    bool answers_for(uint32_t ip) const;

    // A request for one of our addresses from a sane sender (unicast sender MAC; not a
    // gratuitous ARP / conflict announcement for our own address). Probes (sender_ip 0,
    // RFC 5227) are answered.
    bool should_reply(const ArpPacket& packet) const;

    // should_reply() then build_arp_reply(); 0 when no reply is due or cap is too small.
    uint32_t reply(const ArpPacket& packet, uint8_t* out, uint32_t cap) const;

    const MacAddr& mac() const { return mac_; }
    const std::vector<uint32_t>& addresses() const { return addresses_; }

private:
    MacAddr mac_{};
    std::vector<uint32_t> addresses_;  // sorted, unique
};

}  // namespace snatgw
