// ICMP messages the gateway sends itself: echo replies from its own addresses, errors about
// packets it cannot forward (time exceeded when the TTL runs out, destination unreachable), and
// the token bucket that rate limits those errors (RFC 1812 4.3.2.8).
//
// Main lcore (control path), plain byte buffers, every length checked before it is used.
// Addresses are host byte order.
#pragma once

#include <cstdint>

#include "arp.h"

namespace snatgw {

// Turns the Ethernet frame of an ICMP echo request (to one of our addresses: the caller checks)
// into the echo reply, in place: MACs and addresses swapped, type 0, TTL 64, IP options
// dropped, both checksums right. 802.1Q tag kept. Returns the reply's frame length (no
// Ethernet padding), or 0 if the frame is not a well-formed echo request (bad IP or ICMP
// checksum, fragment, source that must not be answered: 0/broadcast/multicast/loopback).
uint32_t build_echo_reply(uint8_t* frame, uint32_t len);

// Largest ICMP error IP datagram (RFC 1812 4.3.2.3): quote as much of the original as fits.
inline constexpr uint32_t kIcmpErrorMaxIpLen = 576;

// Writes into out an Ethernet frame (dst_mac <- our_mac, same 802.1Q tag as the original)
// carrying ICMP error (type, code) from our_ip to the source of the IPv4 packet in orig_frame:
// TTL 64, ICMP header (bytes 4-7 = rest_of_header, e.g. the next-hop MTU for type 3 code 4),
// then the original IP header and as much of its payload as fits in 576 bytes (at least the
// first 8 bytes, RFC 792). Returns the frame length, or 0 when no error may be sent (RFC 1812
// 4.3.2.7: the original is an ICMP error, a non-first fragment, from 0/broadcast/multicast/
// loopback/class E, to broadcast/multicast) or the original is malformed or cap is too small.
uint32_t build_icmp_error(uint8_t* out, uint32_t cap, const uint8_t* orig_frame, uint32_t orig_len,
                          uint8_t type, uint8_t code, uint32_t our_ip, const MacAddr& our_mac,
                          const MacAddr& dst_mac, uint32_t rest_of_header = 0);

// Token bucket: `rate_per_s` tokens a second, at most `burst` saved (starts full).
// Single-threaded. take() is false when no token is left (the caller drops and counts).
class TokenBucket {
public:
    TokenBucket(uint32_t rate_per_s, uint32_t burst);
    bool take(uint64_t now_ms);

private:
    uint64_t rate_;       // milli-tokens per millisecond = tokens per second
    uint64_t cap_milli_;  // burst * 1000
    uint64_t milli_;      // tokens * 1000 available
    uint64_t last_ms_ = 0;
    bool started_ = false;
};

}  // namespace snatgw
