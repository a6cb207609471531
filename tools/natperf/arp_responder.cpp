// ARP duties of a natperf port; see arp_responder.h.
#include "arp_responder.h"

namespace natperf {

ArpState::ArpState(const snatgw::MacAddr& mac_, uint32_t ip_, uint32_t gateway_ip_)
    : responder(mac_, {ip_}), mac(mac_), ip(ip_), gateway_ip(gateway_ip_) {}

uint32_t handle_arp(ArpState& state, const uint8_t* frame, uint32_t len, uint8_t* out, uint32_t cap) {
    const auto packet = snatgw::parse_arp(frame, len);
    if (!packet) {
        ++state.ignored;
        return 0;
    }
    bool useful = false;
    if (state.gateway_ip != 0 && packet->sender_ip == state.gateway_ip &&
        snatgw::arp_sender_learnable(*packet)) {
        state.gateway_mac = packet->sender_mac;
        state.gateway_known = true;
        useful = true;
    }
    if (packet->op == snatgw::kArpOpRequest && state.responder.should_reply(*packet)) {
        const uint32_t n = state.responder.reply(*packet, out, cap);
        if (n != 0) {
            ++state.requests_answered;
            return n;
        }
    }
    if (!useful) ++state.ignored;
    return 0;
}

uint32_t build_gateway_request(const ArpState& state, uint8_t* out, uint32_t cap) {
    if (state.gateway_ip == 0) return 0;
    return snatgw::build_arp_request(out, cap, state.mac, state.ip, state.gateway_ip);
}

}  // namespace natperf
