// Steering strategies; see steering.h.
#include "steering.h"

#include <arpa/inet.h>
#include <rte_flow.h>
#include <rte_hash_crc.h>

#include "packet_view.h"

namespace snatgw {

std::string SteeringPlan::describe() const {
    std::string s = "inside: ";
    s += inside == InsideSteering::Rss ? "rss-src" : "software-handoff";
    s += ", outside: ";
    s += outside == OutsideSteering::Flow ? "rte_flow" : "software-handoff";
    return s;
}

uint16_t inside_owner(uint32_t src_addr_wire, uint16_t workers) {
    if (workers <= 1) return 0;
    return static_cast<uint16_t>(rte_hash_crc_4byte(src_addr_wire, 0x5eed) % workers);
}

std::vector<OutsideFlowRule> outside_flow_rules(uint16_t workers) {
    std::vector<OutsideFlowRule> rules;
    if (workers <= 1 || (workers & (workers - 1)) != 0) return rules;
    const uint16_t mask = static_cast<uint16_t>(workers - 1);
    for (uint8_t proto : {kProtoTcp, kProtoUdp, kProtoIcmp})
        for (uint16_t w = 0; w < workers; ++w) rules.push_back({proto, w, mask, w});
    return rules;
}

namespace {

rte_flow* create_rule(uint16_t port_id, const OutsideFlowRule& r, bool validate_only,
                      std::string& why_not) {
    rte_flow_attr attr{};
    attr.ingress = 1;
    rte_flow_item_tcp tcp_spec{}, tcp_mask{};
    rte_flow_item_udp udp_spec{}, udp_mask{};
    rte_flow_item_icmp icmp_spec{}, icmp_mask{};
    rte_flow_item pattern[4]{};
    pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
    pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
    switch (r.proto) {
        case kProtoTcp:
            tcp_spec.hdr.dst_port = htons(r.spec);
            tcp_mask.hdr.dst_port = htons(r.mask);
            pattern[2] = {RTE_FLOW_ITEM_TYPE_TCP, &tcp_spec, nullptr, &tcp_mask};
            break;
        case kProtoUdp:
            udp_spec.hdr.dst_port = htons(r.spec);
            udp_mask.hdr.dst_port = htons(r.mask);
            pattern[2] = {RTE_FLOW_ITEM_TYPE_UDP, &udp_spec, nullptr, &udp_mask};
            break;
        default:
            icmp_spec.hdr.icmp_ident = htons(r.spec);
            icmp_mask.hdr.icmp_ident = htons(r.mask);
            pattern[2] = {RTE_FLOW_ITEM_TYPE_ICMP, &icmp_spec, nullptr, &icmp_mask};
            break;
    }
    pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
    rte_flow_action_queue queue{r.queue};
    rte_flow_action actions[2]{};
    actions[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &queue};
    actions[1].type = RTE_FLOW_ACTION_TYPE_END;
    rte_flow_error err{};
    if (validate_only) {
        if (rte_flow_validate(port_id, &attr, pattern, actions, &err) != 0) {
            why_not = err.message ? err.message : "rule not supported";
            return nullptr;
        }
        return reinterpret_cast<rte_flow*>(1);  // "valid": never dereferenced
    }
    rte_flow* flow = rte_flow_create(port_id, &attr, pattern, actions, &err);
    if (flow == nullptr) why_not = err.message ? err.message : "rule not created";
    return flow;
}

}  // namespace

bool install_outside_flow_rules(uint16_t port_id, uint16_t workers, std::string& why_not) {
    const std::vector<OutsideFlowRule> rules = outside_flow_rules(workers);
    if (rules.empty()) {
        why_not = workers <= 1 ? "one worker: nothing to steer"
                               : "worker count is not a power of two (a mask cannot express "
                                 "port % workers)";
        return false;
    }
    for (const OutsideFlowRule& r : rules)
        if (create_rule(port_id, r, true, why_not) == nullptr) return false;
    for (const OutsideFlowRule& r : rules) {
        if (create_rule(port_id, r, false, why_not) == nullptr) {
            rte_flow_error err{};
            rte_flow_flush(port_id, &err);
            return false;
        }
    }
    return true;
}

}  // namespace snatgw
