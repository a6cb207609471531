// The 16-byte key of both session hash tables.
//
// Inside key:  (inside addr, remote addr, inside port, remote port, proto)
// Outside key: (public addr, remote addr, public port, remote port, proto)
// The remote is part of both keys: mapping is endpoint-dependent, so one public port can carry
// sessions to many remotes, and a (port, remote) pair is the unit of reuse (invariant I4).
// Fields are in network byte order. rte_hash compares raw bytes: the padding must be zero,
// which the constructor guarantees.
#pragma once

#include <cstdint>

namespace snatgw {

struct FlowKey {
    uint32_t local_addr = 0;   // inside or public address
    uint32_t remote_addr = 0;
    uint16_t local_port = 0;   // ICMP: identifier
    uint16_t remote_port = 0;  // ICMP: 0
    uint8_t proto = 0;
    uint8_t pad[3] = {0, 0, 0};

    FlowKey() = default;
    FlowKey(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport, uint8_t p)
        : local_addr(laddr), remote_addr(raddr), local_port(lport), remote_port(rport), proto(p) {}

    bool operator==(const FlowKey&) const = default;
};

static_assert(sizeof(FlowKey) == 16, "hash keys are 16 bytes with zeroed padding");

}  // namespace snatgw
