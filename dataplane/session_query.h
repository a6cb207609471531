// Which sessions an operator asks about (`snatctl sessions`, `sessions flush`): a filter the
// owning worker evaluates over its own table, and the copy of a session it hands back.
// Addresses and ports in network byte order, as in Session.
#pragma once

#include <cstdint>

#include "session.h"

namespace snatgw {

struct EndpointMatch {
    bool any_addr = true;
    uint32_t addr = 0;
    bool any_port = true;
    uint16_t port = 0;

    bool matches(uint32_t a, uint16_t p) const {
        return (any_addr || a == addr) && (any_port || p == port);
    }
};

struct SessionMatch {
    EndpointMatch inside, outside, remote;
    uint8_t proto = 0;    // 0: any
    int16_t state = -1;   // a TcpState (TCP sessions), -1: any
    int32_t pool = -1;    // pool id, -1: any

    bool matches(const Session& s) const {
        return inside.matches(s.inside_addr, s.inside_port) &&
               outside.matches(s.outside_addr, s.outside_port) &&
               remote.matches(s.remote_addr, s.remote_port) && (proto == 0 || s.proto == proto) &&
               (state < 0 || (s.proto == 6 && static_cast<int16_t>(s.state) == state)) &&
               (pool < 0 || s.pool_id == pool);
    }
};

struct SessionRecord {
    Session session;   // a copy
    uint32_t idle_ms;  // since its last packet
    uint16_t worker;
};

}  // namespace snatgw
