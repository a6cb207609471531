// A NAT worker on a small lab configuration, for tests that push crafted frames through the
// engine and look at what comes out.
//
//   inside hosts  198.18.0.0/24  --rule-->  pool "lab": 198.19.0.10 - 198.19.0.11, ports 1024-65535
//   server        198.19.0.100
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config_builder.h"
#include "nat_worker.h"
#include "packet_builder.h"

namespace snatgw::test {

struct NatOutcome {
    FrameResult result;
    std::vector<uint8_t> frame;  // after the engine (translated in place when forwarded)
};

inline PoolSpec lab_pool(const std::string& policy = "liberal") {
    PoolSpec p;
    p.name = "lab";
    p.addresses = "198.19.0.10-198.19.0.11";
    p.ports = "1024-65535";
    p.policy = policy;
    return p;
}

class NatHarness {
public:
    explicit NatHarness(std::vector<PoolSpec> pools = {lab_pool()}, uint16_t workers = 1,
                        uint16_t worker_id = 0, uint32_t capacity = 4096,
                        std::vector<RuleSpec> rules = {{"198.18.0.0/24", "lab"}})
        : config_(std::make_unique<NatConfig>(build_nat_config(workers, pools, rules))) {
        WorkerParams wp;
        wp.worker_id = worker_id;
        wp.session_capacity = capacity;
        wp.host_capacity = 1024;
        wp.seed = 12345;
        // rte_hash names are process-wide: make each harness unique.
        static std::atomic<uint32_t> instance{0};
        wp.table_prefix = "t";
        wp.table_prefix += std::to_string(instance++);  // (append: GCC 12 -Wrestrict false positive)
        worker_ = std::make_unique<NatWorker>(config_.get(), wp);
    }

    NatOutcome run(Side side, std::vector<uint8_t> frame, uint32_t now_ms = 1000) {
        Frame f{frame.data(), static_cast<uint32_t>(frame.size())};
        FrameResult r;
        worker_->process(side, &f, &r, 1, now_ms);
        return {r, std::move(frame)};
    }
    NatOutcome out(std::vector<uint8_t> frame, uint32_t now_ms = 1000) {
        return run(Side::Inside, std::move(frame), now_ms);
    }
    NatOutcome in(std::vector<uint8_t> frame, uint32_t now_ms = 1000) {
        return run(Side::Outside, std::move(frame), now_ms);
    }

    // A live configuration change, as the daemon publishes it: a new snapshot handed to the
    // worker between bursts. The old snapshot is kept (the daemon frees it after a grace period).
    void reconfigure(const std::vector<PoolSpec>& pools, const std::vector<RuleSpec>& rules,
                     uint16_t workers = 1) {
        retired_.push_back(std::move(config_));
        config_ = std::make_unique<NatConfig>(build_nat_config(workers, pools, rules));
        worker_->set_config(config_.get());
    }

    NatWorker& worker() { return *worker_; }
    const WorkerCounters& counters() const { return worker_->counters(); }
    uint64_t drops(DropReason r) const {
        return worker_->counters().drops[static_cast<std::size_t>(r)];
    }
    const NatConfig& config() const { return *config_; }

private:
    std::unique_ptr<NatConfig> config_;
    std::vector<std::unique_ptr<NatConfig>> retired_;
    std::unique_ptr<NatWorker> worker_;
};

}  // namespace snatgw::test
