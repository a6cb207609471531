// Steering (invariant I2): every packet of a session must reach the worker that owns it.
//
// Inside:  RSS on the IPv4 source address where the port can do it, else a software handoff:
//          the worker that receives a frame hands it to inside_owner(src) over an SPSC ring.
// Outside: rte_flow rules sending port % W == w to queue w where the port validates them (W a
//          power of two), else a software handoff: the engine answers Handoff(owner(port)).
// The engine's own owner check stays on in every strategy, so a misdirected packet is handed
// off, never translated by the wrong worker.
//
// Not implemented: choosing public ports whose reply hashes (Toeplitz, rte_thash) to the
// allocating queue; ports without rte_flow fall back to the software handoff.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace snatgw {

enum class InsideSteering : uint8_t { Rss, Software };
enum class OutsideSteering : uint8_t { Flow, Software };

struct SteeringPlan {
    InsideSteering inside = InsideSteering::Software;
    OutsideSteering outside = OutsideSteering::Software;
    std::string describe() const;  // for the log line and the stats
};

// The worker that owns every session of an inside host (software steering).
uint16_t inside_owner(uint32_t src_addr_wire, uint16_t workers);

// One rte_flow rule: (proto, L4 destination port or ICMP identifier) & mask == spec -> queue.
struct OutsideFlowRule {
    uint8_t proto;
    uint16_t spec;
    uint16_t mask;
    uint16_t queue;
};

// The rules that implement owner(port) = port % W on the outside port: W per protocol (TCP and
// UDP destination port, ICMP echo identifier). Empty when W is not a power of two (a mask
// cannot express the modulo) or W == 1 (nothing to steer).
std::vector<OutsideFlowRule> outside_flow_rules(uint16_t workers);

// Validates and creates the rules on a started port. False (with the reason) if the port
// refuses any of them; then none is left installed.
bool install_outside_flow_rules(uint16_t port_id, uint16_t workers, std::string& why_not);

}  // namespace snatgw
