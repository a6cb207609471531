// The running NAT configuration and its live changes (invariant I6).
//
// The pools and rules are kept as the config file's specs (so `save` writes them back); every
// change is applied to copies, built and validated into a new immutable NatConfig snapshot,
// published to the workers through one atomic pointer, and the old snapshot is freed only
// after an RCU grace period (every worker has passed a quiescent state since the publish, so
// none can still be reading it). A change that does not validate changes nothing.
//
// Pool ids are positions in the pool list and are stored in sessions, so a deleted pool stays
// in the list, retired, while its addresses drain; its slot is reused by a later pool once no
// session is left on it. Control path only; callers serialise (the control socket's thread).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "config_builder.h"
#include "daemon_config.h"
#include "nat_config.h"
#include "port_state.h"

struct rte_rcu_qsbr;

namespace snatgw {

class LiveConfig {
public:
    // Starts from config.pools / config.rules (already validated into config.nat).
    explicit LiveConfig(DaemonConfig& config);
    ~LiveConfig();
    LiveConfig(const LiveConfig&) = delete;
    LiveConfig& operator=(const LiveConfig&) = delete;

    // The workers' view: set WorkerShared::nat_config to this before they start.
    std::atomic<const NatConfig*>* published() { return &published_; }
    // The grace-period tracker the workers report to (nullptr: no workers, e.g. tests; then
    // the old snapshot is freed at once).
    void set_rcu(rte_rcu_qsbr* rcu) { rcu_ = rcu; }

    const NatConfig& current() const { return *current_; }
    const std::vector<PoolSpec>& pools() const { return config_.pools; }
    const std::vector<RuleSpec>& rules() const { return config_.rules; }

    using Change = std::function<void(std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules)>;
    // Applies `change` (which may throw ConfigError) to copies, validates, builds the port
    // state of new addresses (here, on the calling thread: never on a worker), publishes, waits
    // for the grace period, frees the old snapshot, and keeps the new specs in the config. A
    // change whose port state exceeds dataplane.port_state_mb or the memory the machine has
    // available is refused with a ConfigError, and nothing changes.
    void apply(const Change& change);

    // Index of the live (not retired) pool with this name, or -1.
    int find_pool(const std::string& name) const;

    // Predicate the owner of the tables answers: does any session still use `addr` (network
    // order) on any worker? Used to forget drained addresses and reuse retired pool slots.
    using AddressInUse = std::function<bool(uint32_t addr_net)>;
    void set_address_in_use(AddressInUse f) { in_use_ = std::move(f); }
    // Called after each published change (e.g. to answer ARP for new pool addresses).
    void set_on_change(std::function<void(const NatConfig&)> f) { on_change_ = std::move(f); }

private:
    void prune(std::vector<PoolSpec>& pools) const;

    // Builds the snapshot's port state; ConfigError when it does not fit.
    void attach_port_state(NatConfig& next, const NatConfig* current);

    DaemonConfig& config_;
    PortStateStore port_state_;
    std::unique_ptr<NatConfig> current_;
    std::atomic<const NatConfig*> published_{nullptr};
    rte_rcu_qsbr* rcu_ = nullptr;
    AddressInUse in_use_;
    std::function<void(const NatConfig&)> on_change_;
};

// Every public address of the snapshot the gateway must answer ARP for: the pools' addresses
// and those still draining.
std::vector<uint32_t> arp_addresses(const NatConfig& c);

}  // namespace snatgw
