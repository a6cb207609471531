// The snatgw daemon: brings up DPDK (EAL, ports, rings, tables), launches the worker lcores,
// runs the control duties on the main lcore until asked to stop, then stops cleanly and reports.
//
// Start-up errors are thrown (std::runtime_error and friends) with one clear sentence; main()
// prints it and exits non-zero. Nothing is left running on a failed start.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon_config.h"
#include "stats_snapshot.h"
#include "steering.h"

namespace snatgw {

class Daemon {
public:
    explicit Daemon(DaemonConfig config);
    ~Daemon();

    // EAL, ports, tables, workers. Throws on any failure.
    void start(const char* argv0);
    // Runs the control duties until stop() is called (by a signal handler, or by a worker
    // whose loop failed: see WorkerShared::stop), then stops: the control socket answers
    // `stopping` from then on, the workers stop, the control plane closes.
    void run();
    // After run(): why the daemon stopped on its own ("worker 0: exception: ..."), empty after
    // a requested stop. main() exits kExitWorkerFailed then.
    const std::string& failure() const { return failure_; }
    // Async-signal-safe: asks run() to return.
    void stop() { stop_requested_.store(true); }
    // Asks run() to print the counters (SIGUSR1).
    void request_stats() { stats_requested_.store(true); }
    // The current counters as text.
    std::string stats() const;
    // The current counters.
    StatsSnapshot snapshot() const;

private:
    struct State;
    void init_eal(const char* argv0);
    void start_control_plane();  // control socket, metrics endpoint, telemetry
    void stop_control_plane();
    void shutdown();
    void begin_stop(const std::string& why);  // the control socket refuses requests
    std::string worker_failures() const;       // "worker w: reason; ..." of the failed ones

    DaemonConfig config_;
    std::unique_ptr<State> state_;
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> stats_requested_{false};
    bool eal_up_ = false;
    std::string failure_;
};

// The exit status after a worker failed (EX_SOFTWARE, sysexits.h).
inline constexpr int kExitWorkerFailed = 70;

// The EAL arguments the daemon passes: the user's, plus --vdev for non-PCI ports, -l for the
// lcores and --no-pci when no port is PCI (unless the user said otherwise).
std::vector<std::string> eal_arguments(const DaemonConfig& c, const char* argv0);

}  // namespace snatgw
