// Human-readable counters of a running (or stopping) gateway, in the manner of `conntrack -S`:
// one line per worker and a total, then drops by reason, sessions by state, the loop's and the
// control lcore's counters.
#pragma once

#include <string>
#include <vector>

#include "control_lcore.h"
#include "counters.h"
#include "steering.h"
#include "worker_loop.h"

namespace snatgw {

struct WorkerView {
    const WorkerCounters* engine;
    const LoopCounters* loop;
    uint32_t sessions;
    uint32_t session_capacity;
};

std::string format_stats(const std::vector<WorkerView>& workers, const ControlCounters& control,
                         const SteeringPlan& steering);

}  // namespace snatgw
