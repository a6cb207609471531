// Opening a natperf port; see test_port.h.
#include "test_port.h"

#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <chrono>
#include <thread>

namespace natperf {

std::unique_ptr<OpenPort> open_port(const std::string& role, const std::string& device, uint32_t ip,
                                    uint32_t gateway_ip, double link_timeout_s, uint32_t mbufs) {
    auto p = std::make_unique<OpenPort>();
    p->device = std::make_unique<snatgw::EthdevPort>(role, device, 1, mbufs, 0, false,
                                                     static_cast<int>(rte_socket_id()));
    p->device->start();
    rte_eth_promiscuous_enable(p->device->id());  // a failure is harmless (vdevs may refuse)
    p->port.id = p->device->id();
    p->port.pool = p->device->pool();
    p->port.mac = p->device->mac();
    p->port.arp = ArpState(p->port.mac, ip, gateway_ip);
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(link_timeout_s);
    while (true) {
        rte_eth_link link{};
        if (rte_eth_link_get_nowait(p->port.id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) {
            p->link_up = true;
            break;
        }
        if (std::chrono::steady_clock::now() >= end) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return p;
}

}  // namespace natperf
