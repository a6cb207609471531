// The daemon's side of the control socket: executes validated requests (control_protocol.h)
// against the running gateway. Reads counters and configuration directly; asks the workers
// for anything in their session tables through their mailboxes (only a worker touches its
// sessions); changes the NAT configuration through LiveConfig (snapshot + RCU).
//
// Called on the control socket's thread only, one request at a time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_protocol.h"
#include "daemon_config.h"
#include "live_config.h"
#include "nat_worker.h"
#include "worker_loop.h"

namespace snatgw {

struct ControlApiDeps {
    DaemonConfig* config = nullptr;
    LiveConfig* live = nullptr;
    std::vector<const NatWorker*> engines;      // by worker id
    std::vector<WorkerMailbox*> mailboxes;      // by worker id
    std::function<nlohmann::json()> stats;      // the `stats` result
    int mailbox_timeout_ms = 5000;
};

class ControlApi {
public:
    explicit ControlApi(ControlApiDeps deps);
    nlohmann::json handle(const ControlRequest& request);

    // Does any worker hold a port of this public address (network order)? (LiveConfig uses
    // it to forget drained addresses.)
    bool address_in_use(uint32_t addr_net) const;

private:
    nlohmann::json pools() const;
    nlohmann::json pool_json(const PoolSpec& spec, int id) const;
    nlohmann::json sessions(const nlohmann::json& args);
    nlohmann::json flush(const nlohmann::json& args);
    nlohmann::json pool_add(const nlohmann::json& args);
    nlohmann::json pool_del(const nlohmann::json& args);
    nlohmann::json pool_set(const nlohmann::json& args);
    nlohmann::json policy_set(const nlohmann::json& args);
    nlohmann::json timeouts_set(const nlohmann::json& args);
    nlohmann::json log_level(const nlohmann::json& args);
    nlohmann::json save(const nlohmann::json& args);

    SessionMatch to_match(const SessionFilter& f) const;
    // Posts a request to one worker and waits for its answer (ControlError on timeout). A
    // Query's records are in the worker's mailbox (records[0..copied)) until the next ask.
    void ask(uint16_t worker, WorkerMailbox::Op op, const SessionMatch& m, uint64_t skip,
             uint32_t max, uint64_t& matched, uint32_t& copied);
    std::vector<uint16_t> workers_for(const SessionFilter& f) const;
    int pool_index(const std::string& name) const;  // ControlError not_found
    void apply(const LiveConfig::Change& change);   // ConfigError -> invalid_config

    ControlApiDeps d_;
};

// "198.19.0.10-198.19.0.13,198.19.0.20": consecutive addresses as ranges (sorted, unique).
std::string format_address_list(std::vector<uint32_t> addrs);

}  // namespace snatgw
