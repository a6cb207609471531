// Timed flush command; see flush_command.h.
#include "flush_command.h"

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "traffic_engine.h"

namespace natperf {

FlushResult run_flush(const std::string& command, Engine& engine) {
    FlushResult result;
    std::atomic<bool> done{false};
    std::thread runner([&] {
        const auto t0 = std::chrono::steady_clock::now();
        const int status = std::system(command.c_str());
        const auto t1 = std::chrono::steady_clock::now();
        result.seconds = std::chrono::duration<double>(t1 - t0).count();
        result.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
        done.store(true, std::memory_order_release);
    });
    // Bounded by the command itself; ports stay served meanwhile.
    while (!done.load(std::memory_order_acquire)) {
        engine.idle(0.05, &done);
        if (stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    runner.join();
    return result;
}

}  // namespace natperf
