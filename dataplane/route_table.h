// Static IPv4 routes: longest prefix match with DPDK's rte_lpm, answering "which IPv4 next hop
// does a packet to dst go to" (the destination itself for a directly connected prefix).
//
// The distinct next hops live in a small array indexed by the lpm's next-hop id; the default
// route (0.0.0.0/0, which rte_lpm cannot hold: depth 1..32) is kept beside it.
//
// Threads: build it (add/remove) on the control path before the workers start; afterwards
// next_hop() may be called from any number of threads at once (rte_lpm lookups are read-only).
// Adding or removing while workers look up is NOT safe. Addresses are host byte order.
// Needs an initialised EAL (rte_lpm_create allocates from DPDK memory).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct rte_lpm;

namespace snatgw {

class RouteTable {
public:
    // `name` must be unique among DPDK lpm objects (at most 31 characters). Throws
    // std::runtime_error when the table cannot be created.
    RouteTable(const std::string& name, uint32_t max_routes, int socket_id = -1 /* any */);
    ~RouteTable();
    RouteTable(const RouteTable&) = delete;
    RouteTable& operator=(const RouteTable&) = delete;

    // Adds (or replaces) prefix/len -> next_hop. next_hop 0 = directly connected: the next hop
    // is the destination itself. False when len > 32, prefix has bits set beyond len, or the
    // table is full.
    bool add(uint32_t prefix, uint8_t len, uint32_t next_hop);
    // Removes prefix/len; false if there was no such route.
    bool remove(uint32_t prefix, uint8_t len);

    // The IPv4 next hop for dst, or nullopt when no route matches.
    std::optional<uint32_t> next_hop(uint32_t dst) const;

    uint32_t size() const { return routes_; }

private:
    // Next-hop id for an address (0 = connected), allocating one if new; nullopt when the
    // id space is exhausted.
    std::optional<uint32_t> hop_id(uint32_t next_hop);

    rte_lpm* lpm_ = nullptr;
    std::string name_;
    uint32_t max_routes_;
    uint32_t routes_ = 0;
    std::vector<uint32_t> hops_;  // hops_[id] = next hop address; hops_[0] = 0 (connected)
    bool has_default_ = false;
    uint32_t default_hop_ = 0;    // next hop of 0.0.0.0/0 (0 = connected)
};

}  // namespace snatgw
