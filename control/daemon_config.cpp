// Reading and validating the daemon's configuration; see daemon_config.h and
// docs/configuration.md.
//
// Boost.Program_options does the parsing proper: option descriptions (the help text and the
// defaults come from them), the INI reader and the command-line reader, and the precedence of
// the command line over the file (the command line is stored first; po::store never replaces a
// value that is already set). Around it, this file adds what Boost does not give:
//   - a scan of the file for comments (`#` and `;`), line numbers, section names and repeated
//     keys, so every error can say "file:line: option: problem";
//   - the dynamic [pool.NAME] sections, which Boost hands back as unregistered options;
//   - conversion to DaemonConfig with strict numbers and the cross-option checks.
// Addresses, prefixes, port ranges and policies are parsed by config_builder.h.
#include "daemon_config.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

namespace snatgw {

namespace po = boost::program_options;

namespace {

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    return std::string(s.substr(b, s.find_last_not_of(" \t\r") - b + 1));
}

bool is_name(std::string_view s, bool allow_dash) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (allow_dash && c == '-');
    });
}

std::string prefix_text(uint32_t addr, uint8_t len) {
    std::string s = format_ipv4(addr);
    s += '/';
    s += std::to_string(len);
    return s;
}

const std::set<std::string> kFixedSections = {"dataplane", "inside", "outside", "routes", "nat", "control", "events"};
const std::set<std::string> kRepeatable = {"routes.route", "nat.rule"};
const std::vector<std::string> kPoolKeys = {"addresses", "ports", "policy", "tcp_established",
                                            "tcp_transitory", "tcp_syn_sent", "tcp_syn_recv", "udp",
                                            "icmp", "quarantine", "linger", "max_sessions_per_host",
                                            "max_embryonic_per_host"};
const std::vector<std::string> kSteering = {"auto", "rss", "flow", "software"};
const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error"};

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& w : v) {
        if (!s.empty()) s += ", ";
        s += w;
    }
    return s;
}

// " (did you mean 'x'?)" when one candidate is within two edits of `word`.
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    std::size_t best_distance = 3;
    for (const std::string& c : candidates) {
        std::vector<std::size_t> row(c.size() + 1);
        for (std::size_t j = 0; j <= c.size(); ++j) row[j] = j;
        for (std::size_t i = 1; i <= word.size(); ++i) {
            std::size_t diagonal = row[0];
            row[0] = i;
            for (std::size_t j = 1; j <= c.size(); ++j) {
                const std::size_t up = row[j];
                row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (word[i - 1] != c[j - 1])});
                diagonal = up;
            }
        }
        if (row[c.size()] < best_distance) best_distance = row[c.size()], best = c;
    }
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// Where each option's value came from, so errors can point at it.
struct Origins {
    std::string file;
    std::map<std::string, std::vector<int>> lines;  // option -> its lines in the file
    std::map<std::string, int> sections;            // section -> line of its header
    std::set<std::string> cli;                      // options given on the command line

    std::string where(const std::string& option, std::size_t index = 0) const {
        if (cli.count(option)) return "command line";
        if (auto it = lines.find(option); it != lines.end() && index < it->second.size())
            return file + ":" + std::to_string(it->second[index]);
        const std::string section = option.substr(0, option.rfind('.'));
        if (auto it = sections.find(section); it != sections.end())
            return file + ":" + std::to_string(it->second);
        return file;
    }
    [[noreturn]] void fail(const std::string& option, const std::string& problem,
                           std::size_t index = 0) const {
        throw ConfigError(where(option, index) + ": " + option + ": " + problem);
    }
};

// Pool settings as text, before conversion: pool name -> key -> value.
using PoolTexts = std::map<std::string, std::map<std::string, std::string>>;

// Strips comments, checks that every line is "[section]" or "key = value", records lines and
// sections in `o` and the pool sections in `pool_order`, rejects unknown sections and repeated
// keys and sections. Returns the text for Boost's reader.
std::string scan_file(std::istream& in, Origins& o, std::vector<std::string>& pool_order) {
    std::string cleaned, raw, section;
    for (int n = 1; std::getline(in, raw); ++n) {
        const std::string at = o.file + ":" + std::to_string(n) + ": ";
        const std::string line = trim(raw.substr(0, raw.find_first_of("#;")));
        cleaned += line;
        cleaned += '\n';
        if (line.empty()) continue;
        if (line.front() == '[') {
            if (line.back() != ']') throw ConfigError(at + "'" + line + "' is not a [section] header");
            section = trim(std::string_view(line).substr(1, line.size() - 2));
            const bool pool = section.rfind("pool.", 0) == 0;
            if (pool && !is_name(std::string_view(section).substr(5), true))
                throw ConfigError(at + "[" + section + "]: a pool name is letters, digits, '_' and '-'");
            if (!pool && !kFixedSections.count(section))
                throw ConfigError(at + "unknown section [" + section +
                                  "] (sections: dataplane, inside, outside, routes, nat, control, pool.NAME)" +
                                  suggestion(section, {kFixedSections.begin(), kFixedSections.end()}));
            if (auto [it, fresh] = o.sections.emplace(section, n); !fresh)
                throw ConfigError(at + "section [" + section + "] appears twice (first at line " +
                                  std::to_string(it->second) + ")");
            if (pool) pool_order.push_back(section.substr(5));
            continue;
        }
        const std::size_t eq = line.find('=');
        if (eq == std::string::npos)
            throw ConfigError(at + "expected 'option = value' or '[section]', got '" + line + "'");
        const std::string key = trim(std::string_view(line).substr(0, eq));
        if (!is_name(key, false)) throw ConfigError(at + "'" + key + "' is not an option name");
        if (section.empty())
            throw ConfigError(at + "option '" + key + "' is outside any section (e.g. [dataplane])");
        const std::string full = section + "." + key;
        std::vector<int>& seen = o.lines[full];
        if (!seen.empty() && !kRepeatable.count(full))
            throw ConfigError(at + full + ": given twice (first at line " + std::to_string(seen.front()) + ")");
        seen.push_back(n);
    }
    return cleaned;
}

// The option descriptions, with defaults taken from a default-constructed DaemonConfig.
struct Descriptions {
    po::options_description command_line{"Command line", 100, 50};
    po::options_description file{"Configuration file options ([SECTION] OPTION = VALUE, or --SECTION.OPTION VALUE)", 100, 50};
    po::options_description pool{"Pool options ([pool.NAME] KEY = VALUE, or --pool.NAME.KEY VALUE)", 100, 50};
    std::vector<std::string> file_option_names;

    Descriptions() {
        const DaemonConfig d;
        command_line.add_options()
            ("help,h", "print this help and exit")
            ("config", po::value<std::string>()->value_name("FILE"),
             (std::string("configuration file (default ") + kDefaultConfigPath + ")").c_str())
            ("check-config", "validate the configuration and exit (0 if valid)");
        auto add = [this](const char* name, const char* arg, std::optional<std::string> def, const char* doc) {
            auto* v = po::value<std::string>()->value_name(arg);
            if (def) v->default_value(*def, def->empty() ? "\"\"" : *def);
            file.add_options()(name, v, doc);
            file_option_names.emplace_back(name);
        };
        auto add_list = [this](const char* name, const char* arg, const char* doc) {
            file.add_options()(name, po::value<std::vector<std::string>>()->value_name(arg), doc);
            file_option_names.emplace_back(name);
        };
        const auto n = [](auto v) { return std::optional<std::string>(std::to_string(v)); };
        add("dataplane.workers", "N", n(d.workers), "worker lcores (1..64); each polls one RX queue per port");
        add("dataplane.lcores", "LIST", d.lcores, "EAL core list for the main lcore + workers (workers+1 cores); \"\" = 0-<workers>");
        add("dataplane.mbufs", "N", n(d.mbufs), "mbufs per port (512..16777215)");
        add("dataplane.burst", "N", n(d.burst), "packets per RX/TX burst (1..64)");
        add("dataplane.sessions", "N", n(d.sessions), "session table capacity per worker (>= 64)");
        add("dataplane.hosts", "N", n(d.hosts), "inside hosts tracked per worker (>= 1)");
        add("dataplane.port_state_mb", "MIB", n(d.port_state_mb),
            "memory for the pool addresses' port state, 24 KiB per address (16..1048576): pools needing more are refused");
        add("dataplane.idle_polls", "N", n(d.idle_polls), "empty polls in a row before a worker sleeps");
        add("dataplane.idle_sleep_us", "US", n(d.idle_sleep_us), "longest idle sleep in microseconds (0 = busy poll, max 100000)");
        add("dataplane.steering", "WORD", d.steering, "auto | rss | flow | software (auto: the best the ports support)");
        add("dataplane.handoff_ring", "N", n(d.handoff_ring), "slots per worker-pair handoff ring (power of two, 64..65536)");
        add("dataplane.forward_unmatched", "BOOL", std::string(d.forward_unmatched ? "true" : "false"),
            "forward inside traffic no rule matches, untranslated (else drop and count)");
        add("inside.device", "DEV", std::nullopt, "inside port: PCI address (0000:03:00.0) or vdev (net_af_xdp0,iface=gw-in); required");
        add("inside.address", "A/LEN", std::nullopt, "the gateway's address and subnet on the inside port; required");
        add("outside.device", "DEV", std::nullopt, "outside port: PCI address or vdev; required");
        add("outside.address", "A/LEN", std::nullopt, "the gateway's address and subnet on the outside port; required");
        add("outside.gateway", "A", std::string(), "default route next hop on the outside subnet (\"\" = no default route)");
        add_list("routes.route", "\"P/LEN via A\"", "static route out of the outside port (repeatable)");
        add_list("nat.rule", "\"P/LEN POOL\"", "translate inside sources in P/LEN with pool POOL (repeatable; longest prefix wins)");
        add("control.socket", "PATH", d.control_socket, "control socket (Unix domain, absolute path)");
        add("control.metrics", "HOST:PORT", d.metrics, "Prometheus /metrics endpoint, IPv4 address:port (\"\" = off)");
        add("control.log_level", "LEVEL", d.log_level, "trace | debug | info | warn | error");
        const EventLogConfig& ev = d.events;
        add("events.enabled", "BOOL", std::string(ev.enabled ? "true" : "false"),
            "log every session creation and deletion (NAT event log, for abuse tracing)");
        add("events.target", "WHERE", ev.target, "file:/ABSOLUTE/PATH (rotating files) or syslog");
        add("events.max_size_mb", "N", n(ev.max_size_mb), "rotate the file at this size (1..1048576 MiB)");
        add("events.max_files", "N", n(ev.max_files), "rotated files kept (1..1000)");
        add("events.ring", "N", n(ev.ring), "events buffered per worker toward the logger (power of two, 64..4194304)");

        const PoolSpec p;
        const Timeouts& t = p.timeouts;
        pool.add_options()
            ("pool.NAME.addresses", po::value<std::string>()->value_name("LIST"),
             "public addresses: a, a-b, a/len, comma-separated; required")
            ("pool.NAME.ports", po::value<std::string>()->value_name("MIN-MAX")->default_value(p.ports), "public port range")
            ("pool.NAME.policy", po::value<std::string>()->value_name("WORD")->default_value(p.policy),
             "out-of-window TCP: liberal | strict | retrans-ok")
            ("pool.NAME.tcp_established", po::value<uint32_t>()->value_name("S")->default_value(t.tcp_established), "idle timeout, established TCP (1..604800)")
            ("pool.NAME.tcp_transitory", po::value<uint32_t>()->value_name("S")->default_value(t.tcp_transitory), "idle timeout, TCP closing (1..604800)")
            ("pool.NAME.tcp_syn_sent", po::value<uint32_t>()->value_name("S")->default_value(t.tcp_syn_sent), "idle timeout, TCP SYN not answered (1..604800)")
            ("pool.NAME.tcp_syn_recv", po::value<uint32_t>()->value_name("S")->default_value(t.tcp_syn_recv), "idle timeout, TCP handshake answered, not completed (1..604800)")
            ("pool.NAME.udp", po::value<uint32_t>()->value_name("S")->default_value(t.udp), "idle timeout, UDP (1..604800)")
            ("pool.NAME.icmp", po::value<uint32_t>()->value_name("S")->default_value(t.icmp), "idle timeout, ICMP echo (1..604800)")
            ("pool.NAME.quarantine", po::value<uint32_t>()->value_name("S")->default_value(t.quarantine),
             "hold a (port, remote) pair whose remote may be in TIME_WAIT (0..604800)")
            ("pool.NAME.linger", po::value<uint32_t>()->value_name("S")->default_value(t.linger),
             "hold a pair the remote closed passively, or reset (1..604800)")
            ("pool.NAME.max_sessions_per_host", po::value<uint32_t>()->value_name("N")->default_value(p.max_sessions_per_host),
             "sessions per inside host (0 = no cap)")
            ("pool.NAME.max_embryonic_per_host", po::value<uint32_t>()->value_name("N")->default_value(p.max_embryonic_per_host),
             "TCP handshakes per inside host and worker; beyond, its oldest is recycled (0 = no cap)");
    }
};

// Strict unsigned decimal in [lo, hi].
template <typename T>
T number(const Origins& o, const std::string& option, const std::string& text, uint64_t lo, uint64_t hi) {
    uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size())
        o.fail(option, "'" + text + "' is not a number");
    if (v < lo || v > hi)
        o.fail(option, text + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<T>(v);
}

// Runs a config_builder parser, turning its error into one that names the option.
template <typename F>
auto parsed(const Origins& o, const std::string& option, F&& f, std::size_t index = 0) {
    try {
        return f();
    } catch (const ConfigError& e) {
        o.fail(option, e.what(), index);
    }
}

std::string text(const Origins& o, const po::variables_map& vm, const std::string& option) {
    std::string v = trim(vm[option].as<std::string>());
    if (v.find_first_of("#;") != std::string::npos)
        o.fail(option, "'" + v + "' contains '#' or ';', which start comments in the file");
    return v;
}

bool boolean(const Origins& o, const std::string& option, const std::string& v) {
    if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
    if (v == "false" || v == "no" || v == "off" || v == "0") return false;
    o.fail(option, "'" + v + "' is not a boolean (true/false, yes/no, on/off, 1/0)");
}

template <typename List>
void one_of(const Origins& o, const std::string& option, const std::string& v, const List& words) {
    if (std::find(words.begin(), words.end(), v) == words.end())
        o.fail(option, "'" + v + "' is not one of " + join(words));
}

// Builds one port from [inside] or [outside].
PortSpec read_port(const Origins& o, const po::variables_map& vm, const std::string& role) {
    PortSpec p;
    p.role = role;
    const std::string dev = role + ".device", addr = role + ".address";
    if (!vm.count(dev)) o.fail(dev, "missing: every port needs a device (PCI address or vdev string)");
    if (!vm.count(addr)) o.fail(addr, "missing: every port needs the gateway's address/prefix on it");
    p.device = text(o, vm, dev);
    static const std::regex vdev("[A-Za-z0-9_]+(,[^,= ]+=[^,= ]+)*");
    if (!p.is_pci() && !std::regex_match(p.device, vdev))
        o.fail(dev, "'" + p.device + "' is neither a PCI address (0000:03:00.0) nor a vdev string "
                    "(net_af_xdp0,iface=NAME)");
    const std::string a = text(o, vm, addr);
    const std::size_t slash = a.find('/');
    if (slash == std::string::npos) o.fail(addr, "'" + a + "' needs a prefix length (e.g. 198.18.0.1/24)");
    p.address = parsed(o, addr, [&] { return parse_ipv4(a.substr(0, slash)); });
    p.prefix_len = number<uint8_t>(o, addr, a.substr(slash + 1), 1, 31);
    const uint32_t broadcast = p.network() | ~p.netmask();
    if (p.prefix_len <= 30 && (p.address == p.network() || p.address == broadcast))
        o.fail(addr, format_ipv4(p.address) + " is the network or broadcast address of " +
                         prefix_text(p.network(), p.prefix_len));
    return p;
}

// The parts of a "PREFIX WORD VALUE"-like line split on blanks.
std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

void check_core_list(const Origins& o, const std::string& list, uint16_t workers) {
    if (list.empty()) return;
    static const std::regex syntax("[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*");
    if (!std::regex_match(list, syntax))
        o.fail("dataplane.lcores", "'" + list + "' is not a core list like 0-2 or 0,2,3");
    std::set<unsigned> cores;
    std::istringstream in(list);
    for (std::string item; std::getline(in, item, ',');) {
        const std::size_t dash = item.find('-');
        const unsigned lo = number<unsigned>(o, "dataplane.lcores", item.substr(0, dash), 0, 1023);
        const unsigned hi = dash == std::string::npos
                                ? lo : number<unsigned>(o, "dataplane.lcores", item.substr(dash + 1), 0, 1023);
        if (hi < lo) o.fail("dataplane.lcores", "range '" + item + "' ends before it starts");
        for (unsigned c = lo; c <= hi; ++c)
            if (!cores.insert(c).second)
                o.fail("dataplane.lcores", "core " + std::to_string(c) + " is listed twice");
    }
    if (cores.size() != workers + 1u)
        o.fail("dataplane.lcores", "'" + list + "' has " + std::to_string(cores.size()) +
                                       " cores but 1 main lcore + " + std::to_string(workers) +
                                       " workers need " + std::to_string(workers + 1));
}

// Reads, converts and validates the pools; checks their addresses against the ports and routes.
void read_pools(const Origins& o, const PoolTexts& texts, const std::vector<std::string>& order,
                DaemonConfig& c) {
    std::map<uint32_t, std::string> owner;  // pool address -> pool name
    for (const std::string& name : order) {
        const auto& kv = texts.at(name);
        const std::string opt = "pool." + name + ".";
        PoolSpec p;
        p.name = name;
        auto get = [&](const char* key) -> const std::string* {
            auto it = kv.find(key);
            return it == kv.end() ? nullptr : &it->second;
        };
        if (!get("addresses")) o.fail(opt + "addresses", "missing: a pool needs its public addresses");
        p.addresses = *get("addresses");
        const auto list = parsed(o, opt + "addresses", [&] { return parse_address_list(p.addresses); });
        if (const std::string* v = get("ports")) {
            p.ports = *v;
            (void)parsed(o, opt + "ports", [&] { return parse_port_range(*v); });
        }
        if (const std::string* v = get("policy")) {
            p.policy = *v;
            (void)parsed(o, opt + "policy", [&] { return parse_policy(*v); });
        }
        const std::pair<const char*, uint32_t*> numbers[] = {
            {"tcp_established", &p.timeouts.tcp_established}, {"tcp_transitory", &p.timeouts.tcp_transitory},
            {"tcp_syn_sent", &p.timeouts.tcp_syn_sent}, {"tcp_syn_recv", &p.timeouts.tcp_syn_recv},
            {"udp", &p.timeouts.udp}, {"icmp", &p.timeouts.icmp}, {"quarantine", &p.timeouts.quarantine},
            {"linger", &p.timeouts.linger}, {"max_sessions_per_host", &p.max_sessions_per_host},
            {"max_embryonic_per_host", &p.max_embryonic_per_host}};
        for (const auto& [key, field] : numbers)
            if (auto* v = get(key)) *field = number<uint32_t>(o, opt + key, *v, 0, UINT32_MAX);

        const std::string aopt = opt + "addresses";
        for (uint32_t a : list) {
            const std::string at = format_ipv4(a);
            if (a == c.inside.address) o.fail(aopt, at + " is the inside port's own address (inside.address)");
            if (a == c.outside.address) o.fail(aopt, at + " is the outside port's own address (outside.address)");
            if (c.inside.in_subnet(a))
                o.fail(aopt, at + " is in the inside subnet " + prefix_text(c.inside.network(), c.inside.prefix_len));
            if (c.outside.in_subnet(a) && c.outside.prefix_len <= 30 &&
                (a == c.outside.network() || a == (c.outside.network() | ~c.outside.netmask())))
                o.fail(aopt, at + " is the network or broadcast address of the outside subnet");
            if (a == c.outside.gateway) o.fail(aopt, at + " is the outside gateway (outside.gateway)");
            for (const RouteSpec& r : c.routes)
                if (a == r.via) o.fail(aopt, at + " is the next hop of route " + prefix_text(r.prefix, r.length));
            if (auto [it, fresh] = owner.emplace(a, name); !fresh)
                o.fail(aopt, at + " is also in pool '" + it->second + "'");
        }
        // The checks that need the engine's view (port range vs workers, timeout bounds).
        try {
            (void)build_nat_config(c.workers, {p}, {});
        } catch (const ConfigError& e) {
            throw ConfigError(o.where("pool." + name + ".") + ": [pool." + name + "]: " + e.what());
        }
        c.pools.push_back(std::move(p));
    }
    if (c.pools.empty())
        throw ConfigError(o.file + ": no pool: add a [pool.NAME] section with at least 'addresses'");
}

DaemonConfig convert(const Origins& o, const po::variables_map& vm, const PoolTexts& pools,
                     const std::vector<std::string>& pool_order) {
    DaemonConfig c;
    auto num = [&](const char* option, auto& field, uint64_t lo, uint64_t hi) {
        field = number<std::remove_reference_t<decltype(field)>>(o, option, text(o, vm, option), lo, hi);
    };
    num("dataplane.workers", c.workers, 1, 64);
    c.lcores = text(o, vm, "dataplane.lcores");
    check_core_list(o, c.lcores, c.workers);
    num("dataplane.mbufs", c.mbufs, 512, 16777215);
    num("dataplane.burst", c.burst, 1, 64);
    num("dataplane.sessions", c.sessions, 64, UINT32_MAX);
    num("dataplane.hosts", c.hosts, 1, UINT32_MAX);
    num("dataplane.port_state_mb", c.port_state_mb, 16, 1048576);
    num("dataplane.idle_polls", c.idle_polls, 0, UINT32_MAX);
    num("dataplane.idle_sleep_us", c.idle_sleep_us, 0, 100000);
    c.steering = text(o, vm, "dataplane.steering");
    one_of(o, "dataplane.steering", c.steering, kSteering);
    num("dataplane.handoff_ring", c.handoff_ring, 64, 65536);
    if ((c.handoff_ring & (c.handoff_ring - 1)) != 0)
        o.fail("dataplane.handoff_ring", std::to_string(c.handoff_ring) + " is not a power of two");
    c.forward_unmatched = boolean(o, "dataplane.forward_unmatched", text(o, vm, "dataplane.forward_unmatched"));

    c.inside = read_port(o, vm, "inside");
    c.outside = read_port(o, vm, "outside");
    if (c.inside.device == c.outside.device)
        o.fail("outside.device", "'" + c.outside.device + "' is also the inside device");
    if (!c.inside.is_pci() && !c.outside.is_pci() &&
        c.inside.device.substr(0, c.inside.device.find(',')) == c.outside.device.substr(0, c.outside.device.find(',')))
        o.fail("outside.device", "vdev name '" + c.outside.device.substr(0, c.outside.device.find(',')) +
                                     "' is also used by inside.device; each vdev needs its own name");
    const uint8_t shorter = std::min(c.inside.prefix_len, c.outside.prefix_len);
    const uint32_t mask = ~uint32_t{0} << (32 - shorter);
    if ((c.inside.address & mask) == (c.outside.address & mask))
        o.fail("outside.address", prefix_text(c.outside.network(), c.outside.prefix_len) +
                                      " overlaps the inside subnet " + prefix_text(c.inside.network(), c.inside.prefix_len));
    const std::string outside_subnet = prefix_text(c.outside.network(), c.outside.prefix_len);
    auto check_next_hop = [&](const std::string& option, uint32_t a, std::size_t index) {
        if (!c.outside.in_subnet(a))
            o.fail(option, format_ipv4(a) + " is not in the outside subnet " + outside_subnet, index);
        if (a == c.outside.address)
            o.fail(option, format_ipv4(a) + " is the gateway's own outside address", index);
    };
    if (const std::string g = text(o, vm, "outside.gateway"); !g.empty()) {
        c.outside.gateway = parsed(o, "outside.gateway", [&] { return parse_ipv4(g); });
        check_next_hop("outside.gateway", c.outside.gateway, 0);
    }

    const std::vector<std::string> none;
    const auto& routes = vm.count("routes.route") ? vm["routes.route"].as<std::vector<std::string>>() : none;
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const auto w = words(routes[i]);
        if (w.size() != 3 || w[1] != "via")
            o.fail("routes.route", "'" + trim(routes[i]) + "' is not 'PREFIX/LEN via NEXTHOP'", i);
        RouteSpec r;
        std::tie(r.prefix, r.length) = parsed(o, "routes.route", [&] { return parse_prefix(w[0]); }, i);
        r.via = parsed(o, "routes.route", [&] { return parse_ipv4(w[2]); }, i);
        check_next_hop("routes.route", r.via, i);
        if (r.length >= c.inside.prefix_len && c.inside.in_subnet(r.prefix))
            o.fail("routes.route", prefix_text(r.prefix, r.length) + " lies in the inside subnet " +
                                       prefix_text(c.inside.network(), c.inside.prefix_len), i);
        if (r.length == 0 && c.outside.gateway != 0)
            o.fail("routes.route", "a default route is already given by outside.gateway", i);
        for (const RouteSpec& earlier : c.routes)
            if (earlier.prefix == r.prefix && earlier.length == r.length)
                o.fail("routes.route", prefix_text(r.prefix, r.length) + " has two routes", i);
        c.routes.push_back(r);
    }

    read_pools(o, pools, pool_order, c);

    const auto& rules = vm.count("nat.rule") ? vm["nat.rule"].as<std::vector<std::string>>() : none;
    if (rules.empty()) o.fail("nat.rule", "missing: at least one rule 'PREFIX/LEN POOL' is needed");
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto w = words(rules[i]);
        if (w.size() != 2) o.fail("nat.rule", "'" + trim(rules[i]) + "' is not 'PREFIX/LEN POOL'", i);
        const auto [prefix, length] = parsed(o, "nat.rule", [&] { return parse_prefix(w[0]); }, i);
        if (std::none_of(c.pools.begin(), c.pools.end(), [&](const PoolSpec& p) { return p.name == w[1]; }))
            o.fail("nat.rule", "no pool named '" + w[1] + "' (pools are [pool.NAME] sections)", i);
        for (const RuleSpec& earlier : c.rules)
            if (parse_prefix(earlier.prefix) == std::make_pair(prefix, length))
                o.fail("nat.rule", prefix_text(prefix, length) + " already has a rule (-> " + earlier.pool + ")", i);
        c.rules.push_back(RuleSpec{w[0], w[1]});
    }
    try {
        c.nat = build_nat_config(c.workers, c.pools, c.rules);
        check_port_state_budget(c.nat, c.port_state_mb);
    } catch (const ConfigError& e) {
        throw ConfigError(o.file + ": [nat]: " + e.what());
    }

    c.control_socket = text(o, vm, "control.socket");
    if (c.control_socket.empty() || c.control_socket.front() != '/')
        o.fail("control.socket", "'" + c.control_socket + "' is not an absolute path");
    if (c.control_socket.size() > 107)
        o.fail("control.socket", "path is longer than the 107 bytes a Unix socket address holds");
    c.metrics = text(o, vm, "control.metrics");
    if (!c.metrics.empty()) {
        const std::size_t colon = c.metrics.rfind(':');
        if (colon == std::string::npos) o.fail("control.metrics", "'" + c.metrics + "' is not ADDRESS:PORT");
        (void)parsed(o, "control.metrics", [&] { return parse_ipv4(c.metrics.substr(0, colon)); });
        (void)number<uint16_t>(o, "control.metrics", c.metrics.substr(colon + 1), 1, 65535);
    }
    c.log_level = text(o, vm, "control.log_level");
    one_of(o, "control.log_level", c.log_level, kLogLevels);

    c.events.enabled = boolean(o, "events.enabled", text(o, vm, "events.enabled"));
    c.events.target = text(o, vm, "events.target");
    c.events.max_size_mb = number<uint32_t>(o, "events.max_size_mb", text(o, vm, "events.max_size_mb"), 1, 1048576);
    c.events.max_files = number<uint32_t>(o, "events.max_files", text(o, vm, "events.max_files"), 1, 1000);
    c.events.ring = number<uint32_t>(o, "events.ring", text(o, vm, "events.ring"), 64, 4194304);
    try {
        validate_event_log_config(c.events);
    } catch (const ConfigError& e) {
        const std::string msg = e.what();
        o.fail(msg.substr(0, msg.find(':')), msg.substr(msg.find(':') + 2));
    }
    return c;
}

std::string help_text(const Descriptions& d) {
    std::ostringstream out;
    out << "Usage: snatgw [--config FILE] [--check-config] [--help] [--SECTION.OPTION VALUE ...]\n"
           "              [-- EAL arguments]\n\n"
           "Every option of the configuration file may be given on the command line with its\n"
           "dotted name (--dataplane.workers 2, or --dataplane.workers=2) and then overrides the\n"
           "file; a repeatable option given on the command line replaces the file's list (quote\n"
           "values with blanks: --nat.rule \"198.18.0.0/24 lab\"). Arguments after -- go to DPDK's\n"
           "EAL. Reference: docs/configuration.md.\n\n"
        << d.command_line << "\n" << d.file << "\n" << d.pool;
    return out.str();
}

// Takes --pool.NAME.KEY[=]VALUE arguments out of `args` into `pools` (Boost cannot describe
// options whose names are not known in advance).
void take_pool_arguments(std::vector<std::string>& args, PoolTexts& pools, std::vector<std::string>& order,
                         Origins& o) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].rfind("--pool.", 0) != 0) {
            rest.push_back(args[i]);
            continue;
        }
        std::string name = args[i].substr(2), value;
        if (const std::size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
        } else if (i + 1 < args.size()) {
            value = args[++i];
        } else {
            throw ConfigError("command line: --" + name + ": missing value");
        }
        const std::size_t dot = name.rfind('.');
        const std::string pool = name.substr(5, dot == 4 ? 0 : dot - 5), key = name.substr(dot + 1);
        if (dot == 4 || !is_name(pool, true))
            throw ConfigError("command line: --" + name + ": expected --pool.NAME.KEY");
        if (std::find(kPoolKeys.begin(), kPoolKeys.end(), key) == kPoolKeys.end())
            throw ConfigError("command line: " + name + ": unknown pool option '" + key + "' (one of " +
                              join(kPoolKeys) + ")" + suggestion(key, kPoolKeys));
        if (!o.cli.insert(name).second) throw ConfigError("command line: " + name + ": given twice");
        if (!pools.count(pool)) order.push_back(pool);
        pools[pool][key] = trim(value);
    }
    args = std::move(rest);
}

}  // namespace

bool PortSpec::is_pci() const {
    static const std::regex pci("([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]");
    return std::regex_match(device, pci);
}

std::string effective_lcores(const DaemonConfig& c) {
    if (!c.lcores.empty()) return c.lcores;
    std::string s = "0-";
    s += std::to_string(c.workers);
    return s;
}

CommandLine parse_command_line(int argc, const char* const* argv) {
    CommandLine result;
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    if (auto dashes = std::find(args.begin(), args.end(), "--"); dashes != args.end()) {
        result.config.eal_args.assign(dashes + 1, args.end());
        args.erase(dashes, args.end());
    }
    // A value with a newline would become lines of their own when the running configuration is
    // saved (`snatctl save`): refuse control characters in options (the file cannot hold them).
    for (const std::string& a : args)
        for (const char ch : a)
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
                throw ConfigError("command line: argument '" + a.substr(0, 40) +
                                  "' contains a control character");
    Origins o;
    PoolTexts cli_pools;
    std::vector<std::string> cli_pool_order;
    take_pool_arguments(args, cli_pools, cli_pool_order, o);

    const Descriptions d;
    po::options_description all;
    all.add(d.command_line).add(d.file);
    po::variables_map vm;
    try {
        // Stray words are collected under a hidden name, to be named in the error.
        po::options_description hidden;
        hidden.add_options()("stray-argument", po::value<std::vector<std::string>>());
        all.add(hidden);
        po::positional_options_description stray;
        stray.add("stray-argument", -1);
        const po::parsed_options cli = po::command_line_parser(args)
                                           .options(all)
                                           .positional(stray)
                                           .style(po::command_line_style::default_style &
                                                  ~po::command_line_style::allow_guessing)
                                           .run();
        for (const po::option& opt : cli.options) o.cli.insert(opt.string_key);
        po::store(cli, vm);  // first, so the file cannot replace these
    } catch (const po::error& e) {
        std::string msg = "command line: ";
        msg += e.what();
        if (const auto* unknown = dynamic_cast<const po::unknown_option*>(&e)) {
            std::vector<std::string> names = d.file_option_names;
            names.insert(names.end(), {"help", "config", "check-config"});
            std::string name = unknown->get_option_name();
            name.erase(0, name.find_first_not_of('-'));
            msg += suggestion(name, names);
        }
        throw ConfigError(msg);
    }
    if (vm.count("stray-argument"))
        throw ConfigError("command line: unexpected argument '" +
                          vm["stray-argument"].as<std::vector<std::string>>().front() +
                          "' (options are --SECTION.OPTION VALUE; EAL arguments go after --)");
    if (vm.count("help")) {
        result.help = true;
        result.help_text = help_text(d);
        return result;
    }
    result.check_only = vm.count("check-config") > 0;

    o.file = vm.count("config") ? vm["config"].as<std::string>() : kDefaultConfigPath;
    std::ifstream in(o.file);
    if (!in) throw ConfigError("config file '" + o.file + "': cannot open: " + std::strerror(errno));
    std::vector<std::string> pool_order;
    std::istringstream cleaned(scan_file(in, o, pool_order));
    if (in.bad()) throw ConfigError("config file '" + o.file + "': read error");

    PoolTexts pools;
    for (const std::string& name : pool_order) pools[name];  // an empty section is still a pool
    try {
        const po::parsed_options file = po::parse_config_file(cleaned, d.file, true);
        for (const po::option& opt : file.options) {
            if (!opt.unregistered) continue;
            const std::string& key = opt.string_key;
            const std::size_t dot = key.rfind('.');
            const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
            if (section.rfind("pool.", 0) == 0 &&
                std::find(kPoolKeys.begin(), kPoolKeys.end(), name) != kPoolKeys.end()) {
                pools[section.substr(5)][name] = opt.value.empty() ? "" : opt.value.front();
                continue;
            }
            if (section.rfind("pool.", 0) == 0)
                o.fail(key, "unknown pool option '" + name + "' (one of " + join(kPoolKeys) + ")" +
                                suggestion(name, kPoolKeys));
            std::vector<std::string> same_section;
            for (const std::string& n : d.file_option_names)
                if (n.rfind(section + ".", 0) == 0) same_section.push_back(n.substr(section.size() + 1));
            o.fail(key, "unknown option '" + name + "' in [" + section + "] (one of " + join(same_section) +
                            ")" + suggestion(name, same_section));
        }
        po::store(file, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw ConfigError(o.file + ": " + e.what());
    }
    for (const std::string& name : cli_pool_order)
        if (!pools.count(name)) pool_order.push_back(name);
    for (const auto& [name, kv] : cli_pools)
        for (const auto& [key, value] : kv) pools[name][key] = value;

    std::vector<std::string> eal = std::move(result.config.eal_args);
    result.config = convert(o, vm, pools, pool_order);
    result.config.eal_args = std::move(eal);
    result.config.config_file = o.file;
    return result;
}

std::string render_config_file(const DaemonConfig& c) {
    std::ostringstream f;
    const auto opt = [](const std::string& value) { return value.empty() ? std::string() : " " + value; };
    f << "# snatgw configuration (written by snatgw; reference: docs/configuration.md)\n";
    if (!c.eal_args.empty()) {
        f << "# EAL arguments (command line only, after --):";
        for (const std::string& a : c.eal_args) {
            f << ' ';
            for (const char ch : a)  // a comment line: keep it one line
                f << (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? '?' : ch);
        }
        f << '\n';
    }
    f << "\n[dataplane]\n"
      << "workers = " << c.workers << "\n"
      << "lcores =" << opt(c.lcores) << "\n"
      << "mbufs = " << c.mbufs << "\n"
      << "burst = " << c.burst << "\n"
      << "sessions = " << c.sessions << "\n"
      << "hosts = " << c.hosts << "\n"
      << "port_state_mb = " << c.port_state_mb << "\n"
      << "idle_polls = " << c.idle_polls << "\n"
      << "idle_sleep_us = " << c.idle_sleep_us << "\n"
      << "steering = " << c.steering << "\n"
      << "handoff_ring = " << c.handoff_ring << "\n"
      << "forward_unmatched = " << (c.forward_unmatched ? "true" : "false") << "\n";
    for (const PortSpec* p : {&c.inside, &c.outside}) {
        f << "\n[" << p->role << "]\n"
          << "device = " << p->device << "\n"
          << "address = " << prefix_text(p->address, p->prefix_len) << "\n";
        if (p->gateway != 0) f << "gateway = " << format_ipv4(p->gateway) << "\n";
    }
    if (!c.routes.empty()) {
        f << "\n[routes]\n";
        for (const RouteSpec& r : c.routes)
            f << "route = " << prefix_text(r.prefix, r.length) << " via " << format_ipv4(r.via) << "\n";
    }
    for (const PoolSpec& p : c.pools) {
        if (p.retired) continue;  // deleted live, kept only for its draining sessions
        const Timeouts& t = p.timeouts;
        f << "\n[pool." << p.name << "]\n"
          << "addresses = " << p.addresses << "\n"
          << "ports = " << p.ports << "\n"
          << "policy = " << p.policy << "\n"
          << "tcp_established = " << t.tcp_established << "\n"
          << "tcp_transitory = " << t.tcp_transitory << "\n"
          << "tcp_syn_sent = " << t.tcp_syn_sent << "\n"
          << "tcp_syn_recv = " << t.tcp_syn_recv << "\n"
          << "udp = " << t.udp << "\n"
          << "icmp = " << t.icmp << "\n"
          << "quarantine = " << t.quarantine << "\n"
          << "linger = " << t.linger << "\n"
          << "max_sessions_per_host = " << p.max_sessions_per_host << "\n"
          << "max_embryonic_per_host = " << p.max_embryonic_per_host << "\n";
    }
    f << "\n[nat]\n";
    for (const RuleSpec& r : c.rules) f << "rule = " << r.prefix << " " << r.pool << "\n";
    f << "\n[control]\n"
      << "socket = " << c.control_socket << "\n"
      << "metrics =" << opt(c.metrics) << "\n"
      << "log_level = " << c.log_level << "\n";
    f << "\n[events]\n"
      << "enabled = " << (c.events.enabled ? "true" : "false") << "\n"
      << "target = " << c.events.target << "\n"
      << "max_size_mb = " << c.events.max_size_mb << "\n"
      << "max_files = " << c.events.max_files << "\n"
      << "ring = " << c.events.ring << "\n";
    return f.str();
}

}  // namespace snatgw
