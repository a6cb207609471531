// One DPDK ethdev port of the gateway (inside or outside): found by its device name, configured
// with one RX and one TX queue per worker, its own mbuf pool, started, link checked.
//
// Control path only (start-up). Errors are thrown as PortError with one clear sentence.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

struct rte_mempool;

namespace snatgw {

struct PortError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct PortCapabilities {
    bool rss_src_only = false;  // RSS on the IPv4 source address alone, with our queue count
    uint16_t max_rx_queues = 0;
    uint16_t max_tx_queues = 0;
    std::string driver;
};

class EthdevPort {
public:
    // `device`: a PCI address or the vdev name (the part before the first comma). `queues`:
    // RX and TX queues (one per worker). `rss_src`: configure RSS on the source address
    // (only when capabilities say so). `mbufs`: size of this port's pool.
    // `priv_size`: bytes of per-mbuf private area (worker metadata).
    EthdevPort(const std::string& role, const std::string& device, uint16_t queues,
               uint32_t mbufs, uint16_t priv_size, bool rss_src, int socket_id);
    ~EthdevPort();
    EthdevPort(const EthdevPort&) = delete;
    EthdevPort& operator=(const EthdevPort&) = delete;

    // What the device offers, before configuration (decides the steering strategy).
    static PortCapabilities probe(const std::string& role, const std::string& device,
                                  uint16_t* port_id_out = nullptr);

    void start();
    void stop();

    uint16_t id() const { return port_id_; }
    const std::string& role() const { return role_; }
    const std::array<uint8_t, 6>& mac() const { return mac_; }
    rte_mempool* pool() const { return pool_; }
    uint16_t queues() const { return queues_; }
    bool rss_src() const { return rss_src_; }
    const std::string& driver() const { return driver_; }

private:
    std::string role_;
    uint16_t port_id_ = 0;
    uint16_t queues_ = 0;
    bool rss_src_ = false;
    bool started_ = false;
    std::string driver_;
    std::array<uint8_t, 6> mac_{};
    rte_mempool* pool_ = nullptr;
};

// The ethdev name DPDK gives a device string: "net_af_xdp0,iface=x" -> "net_af_xdp0".
std::string device_name(const std::string& device);

}  // namespace snatgw
