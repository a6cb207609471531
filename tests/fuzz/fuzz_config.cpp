// libFuzzer harness: the daemon's configuration parser (control/daemon_config.h), on a file
// written from the input plus optional command-line arguments.
//
// Input: the file's bytes; if there is a NUL byte, what follows it is command-line arguments,
// one per line ('\n'-separated, each cut at a further NUL as argv would be; arguments naming
// --config are left out, the harness picks the file). The file lives in a memfd and is passed
// as `--config /proc/self/fd/N`. Arguments cannot contain '\n' here; see docs/fuzzing.md.
//
// Asserted: parse_command_line returns or throws ConfigError, nothing else (no other
// exception, no crash, no sanitizer report); a returned config holds what validation promises
// (ranges, at least one pool and rule, the engine's snapshot built from them); and
// render_config_file() of it is a file that parses again, without error, to a config that
// renders identically (the round trip `save` relies on).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include "daemon_config.h"
#include "fuzz_support.h"

namespace snatgw::fuzz {
namespace {

struct MemFile {
    int fd = -1;
    std::string path;

    explicit MemFile(const char* name) {
        fd = memfd_create(name, 0);
        if (fd < 0) {
            std::perror("memfd_create");
            std::exit(1);
        }
        path = "/proc/self/fd/" + std::to_string(fd);
    }
    void write(const void* data, std::size_t n) const {
        if (ftruncate(fd, 0) != 0 || (n != 0 && pwrite(fd, data, n, 0) != static_cast<ssize_t>(n))) {
            std::perror("memfd write");
            std::exit(1);
        }
    }
};

MemFile& input_file() {
    static MemFile f("snatgw-fuzz.conf");
    return f;
}
MemFile& rendered_file() {
    static MemFile f("snatgw-fuzz-rendered.conf");
    return f;
}

// parse_command_line, with any exception other than ConfigError turned into a failure.
// Returns false when it threw ConfigError.
bool parse(const std::vector<std::string>& args, CommandLine& out, std::string& error) {
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    try {
        out = parse_command_line(static_cast<int>(argv.size()), argv.data());
        return true;
    } catch (const ConfigError& e) {
        error = e.what();
        FUZZ_CHECK(!error.empty(), "ConfigError without a message");
        return false;
    } catch (const std::exception& e) {
        fail("parse_command_line threw %s (not ConfigError): %s", typeid(e).name(), e.what());
    } catch (...) {
        fail("parse_command_line threw something that is not a std::exception");
    }
}

void check_valid(const DaemonConfig& c) {
    FUZZ_CHECK(c.workers >= 1 && c.workers <= 64, "workers %u", c.workers);
    FUZZ_CHECK(c.burst >= 1 && c.burst <= 64, "burst %u", c.burst);
    FUZZ_CHECK(c.sessions >= 64 && c.hosts >= 1 && c.mbufs >= 512, "table sizes");
    FUZZ_CHECK(c.idle_sleep_us <= 100000, "idle_sleep_us %u", c.idle_sleep_us);
    FUZZ_CHECK(c.handoff_ring >= 64 && c.handoff_ring <= 65536 && (c.handoff_ring & (c.handoff_ring - 1)) == 0,
               "handoff_ring %u", c.handoff_ring);
    FUZZ_CHECK(!c.inside.device.empty() && !c.outside.device.empty() && c.inside.device != c.outside.device,
               "devices");
    FUZZ_CHECK(c.inside.prefix_len >= 1 && c.inside.prefix_len <= 31 && c.outside.prefix_len >= 1 &&
                   c.outside.prefix_len <= 31, "prefix lengths");
    FUZZ_CHECK(!c.pools.empty() && !c.rules.empty(), "a valid config without pools or rules");
    FUZZ_CHECK(c.nat.workers == c.workers && c.nat.pools.size() == c.pools.size(),
               "the engine snapshot does not match the pools");
    for (const RuleSpec& r : c.rules)
        FUZZ_CHECK(std::any_of(c.pools.begin(), c.pools.end(), [&](const PoolSpec& p) { return p.name == r.pool; }),
                   "rule for unknown pool '%s'", r.pool.c_str());
    for (const Pool& p : c.nat.pools) {
        FUZZ_CHECK(!p.addresses.empty() && p.port_min <= p.port_max, "pool %s: empty", p.name.c_str());
        for (uint32_t a : p.addresses)
            FUZZ_CHECK(a != c.inside.address && a != c.outside.address && !c.inside.in_subnet(a),
                       "pool %s holds %s", p.name.c_str(), test::ip_str(a).c_str());
    }
    FUZZ_CHECK(!c.control_socket.empty() && c.control_socket.front() == '/', "control socket '%s'",
               c.control_socket.c_str());
    FUZZ_CHECK(!effective_lcores(c).empty(), "no lcores");
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw;
    using namespace snatgw::fuzz;
    const char* text = reinterpret_cast<const char*>(data);
    const std::size_t file_len = std::find(text, text + size, '\0') - text;
    input_file().write(data, file_len);

    std::vector<std::string> args = {"snatgw", "--config", input_file().path};
    std::vector<std::string> eal;
    if (file_len < size) {
        std::string rest(text + file_len + 1, size - file_len - 1);
        std::size_t start = 0;
        while (start <= rest.size() && args.size() < 40) {
            std::size_t nl = rest.find('\n', start);
            if (nl == std::string::npos) nl = rest.size();
            std::string a = rest.substr(start, nl - start);
            start = nl + 1;
            a.resize(std::strlen(a.c_str()));  // what argv would hold: up to a NUL
            if (a.rfind("--config", 0) == 0) continue;  // the harness chooses the file
            args.push_back(std::move(a));
        }
        if (auto dashes = std::find(args.begin(), args.end(), "--"); dashes != args.end())
            eal.assign(dashes, args.end());
    }

    CommandLine first;
    std::string error;
    if (!parse(args, first, error)) return 0;
    if (first.help) {
        FUZZ_CHECK(!first.help_text.empty(), "--help without help text");
        return 0;
    }
    check_valid(first.config);

    // Round trip through render_config_file.
    const std::string rendered = render_config_file(first.config);
    rendered_file().write(rendered.data(), rendered.size());
    std::vector<std::string> again = {"snatgw", "--config", rendered_file().path};
    again.insert(again.end(), eal.begin(), eal.end());
    CommandLine second;
    if (!parse(again, second, error)) {
        std::string extra;
        for (std::size_t i = 3; i < args.size(); ++i) extra += " [" + args[i] + "]";
        fail("render_config_file wrote a file that does not parse: %s\n--- input file:\n%.*s\n"
             "--- arguments:%s\n--- rendered:\n%s", error.c_str(), static_cast<int>(file_len), text,
             extra.c_str(), rendered.c_str());
    }
    const std::string rendered2 = render_config_file(second.config);
    FUZZ_CHECK(rendered == rendered2, "render -> parse -> render changed the file:\n--- first:\n%s\n--- second:\n%s",
               rendered.c_str(), rendered2.c_str());
    return 0;
}
