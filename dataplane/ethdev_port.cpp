// DPDK port set-up; see ethdev_port.h.
#include "ethdev_port.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace snatgw {

namespace {

// Deep RX rings: on a shared machine a worker can be descheduled for tens of milliseconds, and
// what does not fit the ring is lost before snatgw sees it (the port's `missed`). Bounded
// below by what the mbuf pool can fill (see descriptors_for()).
constexpr uint16_t kRxDescMax = 4096;
constexpr uint16_t kTxDesc = 1024;

// Ring size that leaves the pool room for every queue's RX ring, the TX rings and bursts in
// flight: the largest power of two <= kRxDescMax with queues * (rx + tx) <= mbufs / 2.
uint16_t rx_descriptors_for(uint32_t mbufs, uint16_t queues) {
    uint32_t rx = kRxDescMax;
    while (rx > 256 && uint64_t{queues} * (rx + kTxDesc) > mbufs / 2) rx /= 2;
    return static_cast<uint16_t>(rx);
}
constexpr uint64_t kRssSrcHf = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 |
                               RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP |
                               RTE_ETH_RSS_NONFRAG_IPV4_OTHER;

std::string errtext(int rc) { return rte_strerror(rc < 0 ? -rc : rc); }

uint16_t find_port(const std::string& role, const std::string& device) {
    uint16_t id = 0;
    const std::string name = device_name(device);
    if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
        throw PortError(role + " port: device '" + name +
                        "' not found (a NIC: bound to vfio-pci, see dpdk-devbind.py --status; "
                        "a vdev: its driver refused it, see the EAL lines above: interface "
                        "missing, or more queues asked than it has)");
    return id;
}

}  // namespace

std::string device_name(const std::string& device) { return device.substr(0, device.find(',')); }

PortCapabilities EthdevPort::probe(const std::string& role, const std::string& device,
                                   uint16_t* port_id_out) {
    const uint16_t id = find_port(role, device);
    if (port_id_out) *port_id_out = id;
    rte_eth_dev_info info{};
    const int rc = rte_eth_dev_info_get(id, &info);
    if (rc != 0) throw PortError(role + " port: cannot read device info: " + errtext(rc));
    PortCapabilities caps;
    caps.max_rx_queues = info.max_rx_queues;
    caps.max_tx_queues = info.max_tx_queues;
    caps.driver = info.driver_name ? info.driver_name : "?";
    // RSS on the source address alone keeps every session of an inside host on one queue.
    caps.rss_src_only = (info.flow_type_rss_offloads & RTE_ETH_RSS_IPV4) != 0 &&
                        (info.flow_type_rss_offloads & RTE_ETH_RSS_L3_SRC_ONLY) != 0;
    return caps;
}

EthdevPort::EthdevPort(const std::string& role, const std::string& device, uint16_t queues,
                       uint32_t mbufs, uint16_t priv_size, bool rss_src, int socket_id)
    : role_(role), queues_(queues), rss_src_(rss_src) {
    const PortCapabilities caps = probe(role, device, &port_id_);
    driver_ = caps.driver;
    if (queues > caps.max_rx_queues || queues > caps.max_tx_queues)
        throw PortError(role + " port (" + driver_ + "): " + std::to_string(queues) +
                        " workers need " + std::to_string(queues) +
                        " RX and TX queues, the device offers " +
                        std::to_string(caps.max_rx_queues) + " RX / " +
                        std::to_string(caps.max_tx_queues) +
                        " TX (for af_xdp/af_packet vdevs raise queue_count/qpairs and the "
                        "interface's channels)");

    const std::string pool_name = "mbuf_" + role;
    pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, 256,
                                    static_cast<uint16_t>(RTE_ALIGN(priv_size, RTE_MBUF_PRIV_ALIGN)),
                                    RTE_MBUF_DEFAULT_BUF_SIZE, socket_id);
    if (pool_ == nullptr)
        throw PortError(role + " port: cannot create a pool of " + std::to_string(mbufs) +
                        " mbufs: " + rte_strerror(rte_errno) + " (hugepages reserved?)");

    rte_eth_conf conf{};
    if (rss_src) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = kRssSrcHf | RTE_ETH_RSS_L3_SRC_ONLY;
    }
    int rc = rte_eth_dev_configure(port_id_, queues, queues, &conf);
    if (rc != 0)
        throw PortError(role + " port (" + driver_ + "): configure with " +
                        std::to_string(queues) + " queues failed: " + errtext(rc));
    uint16_t rxd = rx_descriptors_for(mbufs, queues), txd = kTxDesc;
    rte_eth_dev_adjust_nb_rx_tx_desc(port_id_, &rxd, &txd);
    for (uint16_t q = 0; q < queues; ++q) {
        rc = rte_eth_rx_queue_setup(port_id_, q, rxd, socket_id, nullptr, pool_);
        if (rc != 0)
            throw PortError(role + " port: RX queue " + std::to_string(q) + " setup failed: " +
                            errtext(rc));
        rc = rte_eth_tx_queue_setup(port_id_, q, txd, socket_id, nullptr);
        if (rc != 0)
            throw PortError(role + " port: TX queue " + std::to_string(q) + " setup failed: " +
                            errtext(rc));
    }
    rte_ether_addr mac{};
    rte_eth_macaddr_get(port_id_, &mac);
    for (int i = 0; i < 6; ++i) mac_[static_cast<std::size_t>(i)] = mac.addr_bytes[i];
}

void EthdevPort::start() {
    const int rc = rte_eth_dev_start(port_id_);
    if (rc != 0) throw PortError(role_ + " port: start failed: " + errtext(rc));
    started_ = true;
}

void EthdevPort::stop() {
    if (!started_) return;
    rte_eth_dev_stop(port_id_);
    started_ = false;
}

EthdevPort::~EthdevPort() {
    stop();
    rte_eth_dev_close(port_id_);
    // The pool is freed with the EAL (mbufs may still sit in rings during shutdown).
}

}  // namespace snatgw
