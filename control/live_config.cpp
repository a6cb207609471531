// Live NAT configuration changes; see live_config.h.
#include "live_config.h"

#include <arpa/inet.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>

#include "expiry_lists.h"  // kMaxPools

namespace snatgw {

LiveConfig::LiveConfig(DaemonConfig& config)
    : config_(config), current_(std::make_unique<NatConfig>(config.nat)) {
    published_.store(current_.get(), std::memory_order_release);
}

LiveConfig::~LiveConfig() = default;

int LiveConfig::find_pool(const std::string& name) const {
    for (std::size_t i = 0; i < config_.pools.size(); ++i)
        if (!config_.pools[i].retired && config_.pools[i].name == name) return static_cast<int>(i);
    return -1;
}

void LiveConfig::prune(std::vector<PoolSpec>& pools) const {
    if (!in_use_) return;
    // Drained addresses no session uses any more are forgotten.
    for (PoolSpec& p : pools)
        std::erase_if(p.draining, [&](uint32_t a) { return !in_use_(htonl(a)); });
    // Retired pools at the end of the list with nothing left draining are dropped; others
    // stay until a new pool takes their slot (see apply).
    while (!pools.empty() && pools.back().retired && pools.back().draining.empty()) pools.pop_back();
}

void LiveConfig::apply(const Change& change) {
    std::vector<PoolSpec> pools = config_.pools;
    std::vector<RuleSpec> rules = config_.rules;
    change(pools, rules);
    prune(pools);
    // A new pool appended beyond the limit takes the slot of a retired pool that has drained.
    if (pools.size() > kMaxPools) {
        for (std::size_t i = 0; i + 1 < pools.size() && pools.size() > kMaxPools; ++i) {
            if (!pools[i].retired || !pools[i].draining.empty()) continue;
            pools[i] = std::move(pools.back());
            pools.pop_back();
        }
        if (pools.size() > kMaxPools)
            throw ConfigError("at most " + std::to_string(kMaxPools) +
                              " pools, counting deleted pools whose sessions are still draining");
    }
    auto next = std::make_unique<NatConfig>(build_nat_config(config_.workers, pools, rules));

    published_.store(next.get(), std::memory_order_release);
    // A worker adopts the published snapshot at the top of a loop pass and reports a quiescent
    // state at its end. After one grace period no worker references the old snapshot any more
    // (safe to free), but one may have read the old pointer in the pass that ended it; after a
    // second, every worker has run a whole pass that began after the first ended, and so uses
    // `next`: when the request returns, the change is in force everywhere.
    if (rcu_ != nullptr) {
        rte_rcu_qsbr_synchronize(rcu_, RTE_QSBR_THRID_INVALID);
        rte_rcu_qsbr_synchronize(rcu_, RTE_QSBR_THRID_INVALID);
    }
    current_ = std::move(next);
    config_.pools = std::move(pools);
    config_.rules = std::move(rules);
    config_.nat = *current_;
    if (on_change_) on_change_(*current_);
}

std::vector<uint32_t> arp_addresses(const NatConfig& c) {
    std::vector<uint32_t> out;
    for (const Pool& p : c.pools) {
        out.insert(out.end(), p.addresses.begin(), p.addresses.end());
        out.insert(out.end(), p.draining.begin(), p.draining.end());
    }
    return out;
}

}  // namespace snatgw
