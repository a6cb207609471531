// Static routes over rte_lpm; see route_table.h.
#include "route_table.h"

#include <rte_errno.h>
#include <rte_lpm.h>

#include <algorithm>
#include <stdexcept>

namespace snatgw {

namespace {

constexpr uint32_t kMaxHopId = (1u << 24) - 1;  // rte_lpm next hops are 24 bits

uint32_t prefix_mask(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

}  // namespace

RouteTable::RouteTable(const std::string& name, uint32_t max_routes, int socket_id)
    : name_(name), max_routes_(max_routes == 0 ? 1 : max_routes) {
    rte_lpm_config cfg{};
    cfg.max_rules = max_routes_;
    // One tbl8 group per route longer than /24 at most.
    cfg.number_tbl8s = std::max<uint32_t>(max_routes_, 16);
    cfg.flags = 0;
    lpm_ = rte_lpm_create(name.c_str(), socket_id, &cfg);
    if (lpm_ == nullptr) {
        std::string msg = "cannot create route table '";
        msg += name;
        msg += "': ";
        msg += rte_strerror(rte_errno);
        throw std::runtime_error(msg);
    }
    hops_.push_back(0);  // id 0: directly connected
}

RouteTable::~RouteTable() { rte_lpm_free(lpm_); }

std::optional<uint32_t> RouteTable::hop_id(uint32_t next_hop) {
    const auto it = std::find(hops_.begin(), hops_.end(), next_hop);
    if (it != hops_.end()) return static_cast<uint32_t>(it - hops_.begin());
    if (hops_.size() > kMaxHopId) return std::nullopt;
    hops_.push_back(next_hop);
    return static_cast<uint32_t>(hops_.size() - 1);
}

bool RouteTable::add(uint32_t prefix, uint8_t len, uint32_t next_hop) {
    if (len > 32 || (prefix & ~prefix_mask(len)) != 0) return false;
    if (len == 0) {
        if (!has_default_) {
            if (routes_ >= max_routes_) return false;
            ++routes_;
        }
        has_default_ = true;
        default_hop_ = next_hop;
        return true;
    }
    uint32_t existing = 0;
    const bool present = rte_lpm_is_rule_present(lpm_, prefix, len, &existing) == 1;
    if (!present && routes_ >= max_routes_) return false;
    const std::optional<uint32_t> id = hop_id(next_hop);
    if (!id || rte_lpm_add(lpm_, prefix, len, *id) != 0) return false;
    if (!present) ++routes_;
    return true;
}

bool RouteTable::remove(uint32_t prefix, uint8_t len) {
    if (len > 32 || (prefix & ~prefix_mask(len)) != 0) return false;
    if (len == 0) {
        if (!has_default_) return false;
        has_default_ = false;
        --routes_;
        return true;
    }
    if (rte_lpm_delete(lpm_, prefix, len) != 0) return false;
    --routes_;
    return true;
}

std::optional<uint32_t> RouteTable::next_hop(uint32_t dst) const {
    uint32_t id = 0;
    uint32_t hop = 0;
    if (rte_lpm_lookup(lpm_, dst, &id) == 0 && id < hops_.size())
        hop = hops_[id];
    else if (has_default_)
        hop = default_hop_;
    else
        return std::nullopt;
    return hop == 0 ? dst : hop;
}

}  // namespace snatgw
