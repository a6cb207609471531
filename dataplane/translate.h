// Header rewriting for NAT44 with incremental checksum updates (RFC 1624).
//
// All functions take a parsed PacketView (packet_view.h) and new values in network byte order.
// They never read or write outside the offsets the parser validated. A zero UDP checksum
// (no checksum) stays zero; a UDP checksum that would become 0x0000 is sent as 0xffff.
#pragma once

#include <cstdint>

#include "packet_view.h"

namespace snatgw {

// Inside -> outside: source address and source port (ICMP echo: identifier).
void rewrite_source(const PacketView& v, uint32_t addr, uint16_t port);

// Outside -> inside: destination address and destination port (ICMP echo: identifier).
void rewrite_destination(const PacketView& v, uint32_t addr, uint16_t port);

// ICMP error sent by an inside host about a packet it received from outside: the outer source
// and the embedded packet's destination address and port become the public ones.
void rewrite_icmp_error_from_inside(const PacketView& v, uint32_t addr, uint16_t port);

// ICMP error arriving from outside about a packet we sent: the outer destination and the
// embedded packet's source address and port become the inside ones.
void rewrite_icmp_error_from_outside(const PacketView& v, uint32_t addr, uint16_t port);

// TTL of the outer header. The caller checks ttl > 1 first (packet_ttl).
void decrement_ttl(const PacketView& v);
inline uint8_t packet_ttl(const PacketView& v) { return v.l3()[ipv4_off::kTtl]; }

}  // namespace snatgw
