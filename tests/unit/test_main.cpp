// gtest main for the unit tests: initialises a small DPDK EAL (no hugepages, no PCI, in memory)
// because the session and host tables are rte_hash tables, then runs every test.
#include <gtest/gtest.h>
#include <rte_eal.h>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    std::vector<std::string> args = {"snatgw-unit", "--no-huge", "-m", "1024", "--no-pci",
                                     "--no-telemetry", "-l", "0",
                                     "--log-level", "lib.eal:error", "--no-shconf"};
    std::vector<char*> eal_argv;
    for (std::string& a : args) eal_argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "cannot initialise DPDK EAL for the unit tests\n");
        return 1;
    }
    const int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    return rc;
}
