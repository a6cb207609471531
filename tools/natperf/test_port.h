// Opening one of natperf's two ports: snatgw's EthdevPort (one RX and one TX queue, its own
// mbuf pool) started, link awaited, and described as the engine's TestPort.
#pragma once

#include <memory>
#include <string>

#include "ethdev_port.h"
#include "traffic_engine.h"

namespace natperf {

struct OpenPort {
    std::unique_ptr<snatgw::EthdevPort> device;
    TestPort port;
    bool link_up = false;
};

// role: "initiator" or "responder" (names the mbuf pool; unique per process). Throws
// snatgw::PortError. Waits up to link_timeout_s for the link (a memif waits for its peer).
// mbufs: the port's pool (RX ring + TX ring + bursts in flight).
std::unique_ptr<OpenPort> open_port(const std::string& role, const std::string& device, uint32_t ip,
                                    uint32_t gateway_ip, double link_timeout_s, uint32_t mbufs = 16383);

}  // namespace natperf
