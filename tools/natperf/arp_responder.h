// ARP duties of one natperf port (on top of snatgw's dataplane/arp.h): answer requests for the
// port's address, learn the gateway's MAC from any ARP it sends (its reply to our request, or
// its own request for us), and build our request for the gateway.
//
// Pure C++ on byte buffers; the engine sends what it returns.
#pragma once

#include <cstdint>

#include "arp.h"

namespace natperf {

struct ArpState {
    ArpState() = default;
    ArpState(const snatgw::MacAddr& mac, uint32_t ip, uint32_t gateway_ip);

    snatgw::ArpResponder responder;
    snatgw::MacAddr mac{};
    uint32_t ip = 0;
    uint32_t gateway_ip = 0;  // 0: none
    snatgw::MacAddr gateway_mac{};
    bool gateway_known = false;
    uint64_t requests_answered = 0;
    uint64_t ignored = 0;  // ARP frames neither for us nor from the gateway
};

// Handles one received ARP frame. Returns the length of the reply written to out (0: nothing
// to send). Malformed frames are ignored (counted).
uint32_t handle_arp(ArpState& state, const uint8_t* frame, uint32_t len, uint8_t* out, uint32_t cap);

// Our who-has for the gateway (0 when there is no gateway or cap is too small).
uint32_t build_gateway_request(const ArpState& state, uint8_t* out, uint32_t cap);

}  // namespace natperf
