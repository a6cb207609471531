// Runs --flush-command (the DUT's "delete all state": `snatctl sessions.flush`, `conntrack -F`)
// through /bin/sh -c on a helper thread while the engine keeps both ports served (ARP), and
// times it: the tear-down rate is derived from these durations.
#pragma once

#include <string>

namespace natperf {

class Engine;

struct FlushResult {
    int exit_code = -1;    // the shell's exit status (-1: killed by a signal / could not run)
    double seconds = 0;    // wall time from fork to exit
};

FlushResult run_flush(const std::string& command, Engine& engine);

}  // namespace natperf
