// snatgw: the NAT44 gateway daemon. Parses the configuration, starts DPDK and the workers,
// stops cleanly on SIGINT/SIGTERM and prints the final counters; SIGUSR1 prints them live.
// A worker that fails stops it the same way, and the exit status is then 70.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "daemon.h"
#include "daemon_config.h"

namespace {

snatgw::Daemon* g_daemon = nullptr;

void on_signal(int sig) {
    if (g_daemon == nullptr) return;
    if (sig == SIGUSR1) g_daemon->request_stats();
    else g_daemon->stop();
}

}  // namespace

int main(int argc, char** argv) {
    snatgw::CommandLine cl;
    try {
        cl = snatgw::parse_command_line(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "snatgw: %s\n", e.what());
        return 2;
    }
    if (cl.help) {
        std::fputs(cl.help_text.c_str(), stdout);
        return 0;
    }
    if (cl.check_only) {
        std::printf("snatgw: configuration OK\n");
        return 0;
    }

    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(spdlog::level::from_str(cl.config.log_level));

    snatgw::Daemon daemon(cl.config);
    try {
        daemon.start(argv[0]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "snatgw: %s\n", e.what());
        return 1;
    }
    g_daemon = &daemon;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);

    std::printf("snatgw: ready\n");
    std::fflush(stdout);
    daemon.run();
    g_daemon = nullptr;
    std::printf("snatgw: stopped; final counters:\n%s", daemon.stats().c_str());
    std::fflush(stdout);
    if (!daemon.failure().empty()) {
        std::fprintf(stderr, "snatgw: stopped because a worker failed: %s\n",
                     daemon.failure().c_str());
        return snatgw::kExitWorkerFailed;
    }
    return 0;
}
