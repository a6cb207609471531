// Live NAT configuration changes; see live_config.h.
#include "live_config.h"

#include <arpa/inet.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <fstream>
#include <new>
#include <string>

#include "expiry_lists.h"  // kMaxPools

namespace snatgw {

namespace {

// MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read (then only the configured
// limit applies).
std::size_t memory_available() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::size_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024;
    return 0;
}

std::size_t addresses_of(const NatConfig& c) {
    std::size_t n = 0;
    for (const Pool& p : c.pools) n += p.addresses.size() + p.draining.size();
    return n;
}

}  // namespace

LiveConfig::LiveConfig(DaemonConfig& config)
    : config_(config),
      port_state_(config.workers),
      current_(std::make_unique<NatConfig>(config.nat)) {
    attach_port_state(*current_, nullptr);
    config_.nat = *current_;
    published_.store(current_.get(), std::memory_order_release);
}

void LiveConfig::attach_port_state(NatConfig& next, const NatConfig* current) {
    check_port_state_budget(next, config_.port_state_mb);
    // New addresses get fresh state: refuse what the machine cannot hold now (a live change must
    // never push the gateway into swapping or the OOM killer), with room to spare.
    const std::size_t before = current != nullptr ? addresses_of(*current) : 0;
    const std::size_t after = addresses_of(next);
    const std::size_t grow =
        after > before ? (after - before) * PortStateStore::bytes_per_address(next.workers) : 0;
    const std::size_t avail = memory_available();
    if (grow > 0 && avail != 0 && grow > avail / 2)
        throw ConfigError("the port state of " + std::to_string(after - before) +
                          " new addresses needs " + std::to_string(grow >> 20) +
                          " MiB, more than half of the " + std::to_string(avail >> 20) +
                          " MiB this machine has available (dataplane.port_state_mb allows " +
                          std::to_string(config_.port_state_mb) + " MiB)");
    try {
        port_state_.attach(next);
    } catch (const std::bad_alloc&) {
        throw ConfigError("out of memory building the port state of " + std::to_string(after) +
                          " addresses (dataplane.port_state_mb: " +
                          std::to_string(config_.port_state_mb) + " MiB)");
    }
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
    attach_port_state(*next, current_.get());

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
