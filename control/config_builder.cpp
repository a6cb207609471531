// Validation of pools and rules into a NatConfig; see config_builder.h.
#include "config_builder.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <unordered_map>

#include "expiry_lists.h"  // kMaxPools
#include "port_state.h"

namespace snatgw {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
    if (s.empty()) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t pos = s.find(sep, start);
        out.push_back(trim(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start)));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

constexpr uint32_t kMaxPoolAddresses = 65536;  // per pool: bounds memory of a typo like /8

}  // namespace

std::string format_ipv4(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
           std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

uint32_t parse_ipv4(std::string_view text) {
    const std::string_view t = trim(text);
    const auto parts = split(t, '.');
    if (parts.size() != 4) throw ConfigError("'" + std::string(t) + "' is not an IPv4 address");
    uint32_t addr = 0;
    for (std::string_view p : parts) {
        unsigned v = 0;
        if (p.size() > 3 || !parse_number(p, v) || v > 255)
            throw ConfigError("'" + std::string(t) + "' is not an IPv4 address");
        addr = (addr << 8) | v;
    }
    return addr;
}

std::pair<uint32_t, uint8_t> parse_prefix(std::string_view text) {
    const std::string_view t = trim(text);
    const std::size_t slash = t.find('/');
    if (slash == std::string_view::npos) return {parse_ipv4(t), 32};
    const uint32_t addr = parse_ipv4(t.substr(0, slash));
    unsigned len = 0;
    if (!parse_number(t.substr(slash + 1), len) || len > 32)
        throw ConfigError("'" + std::string(t) + "': prefix length must be 0..32");
    const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    if ((addr & ~mask) != 0)
        throw ConfigError("'" + std::string(t) + "': address has bits set beyond the prefix (did you mean " +
                          format_ipv4(addr & mask) + "/" + std::to_string(len) + "?)");
    return {addr, static_cast<uint8_t>(len)};
}

std::vector<uint32_t> parse_address_list(std::string_view text) {
    std::vector<uint32_t> out;
    if (trim(text).empty()) throw ConfigError("empty address list");
    for (std::string_view item : split(text, ',')) {
        uint64_t first = 0, last = 0;
        if (item.find('/') != std::string_view::npos) {
            const auto [addr, len] = parse_prefix(item);
            first = addr;
            last = uint64_t{addr} + ((uint64_t{1} << (32 - len)) - 1);
        } else if (const std::size_t dash = item.find('-'); dash != std::string_view::npos) {
            first = parse_ipv4(item.substr(0, dash));
            last = parse_ipv4(item.substr(dash + 1));
            if (last < first)
                throw ConfigError("address range '" + std::string(item) + "' ends before it starts");
        } else {
            first = last = parse_ipv4(item);
        }
        if (last - first + 1 + out.size() > kMaxPoolAddresses)
            throw ConfigError("more than " + std::to_string(kMaxPoolAddresses) +
                              " addresses in one pool");
        for (uint64_t a = first; a <= last; ++a) out.push_back(static_cast<uint32_t>(a));
    }
    return out;
}

std::pair<uint16_t, uint16_t> parse_port_range(std::string_view text) {
    const std::string_view t = trim(text);
    const std::size_t dash = t.find('-');
    unsigned lo = 0, hi = 0;
    const bool ok = dash == std::string_view::npos
                        ? parse_number(t, lo) && (hi = lo, true)
                        : parse_number(trim(t.substr(0, dash)), lo) &&
                              parse_number(trim(t.substr(dash + 1)), hi);
    if (!ok || lo < 1 || hi > 65535 || lo > hi)
        throw ConfigError("port range '" + std::string(t) + "' must be 'min-max' within 1-65535");
    return {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
}

Policy parse_policy(std::string_view text) {
    const std::string_view t = trim(text);
    if (t == "liberal") return Policy::Liberal;
    if (t == "strict") return Policy::Strict;
    if (t == "retrans-ok") return Policy::RetransOk;
    throw ConfigError("policy '" + std::string(t) + "' is not one of liberal, strict, retrans-ok");
}

void check_port_state_budget(const NatConfig& c, uint32_t limit_mb) {
    std::size_t addresses = 0;
    for (const Pool& p : c.pools) addresses += p.addresses.size() + p.draining.size();
    const std::size_t need = PortStateStore::bytes_for(c);
    const std::size_t limit = std::size_t{limit_mb} << 20;
    if (need <= limit) return;
    const std::size_t per = PortStateStore::bytes_per_address(c.workers);
    throw ConfigError("dataplane.port_state_mb: the pools' " + std::to_string(addresses) +
                      " addresses (draining ones included) need " + std::to_string((need + (1 << 20) - 1) >> 20) +
                      " MiB of port state (" + std::to_string(per / 1024) + " KiB each), more than the " +
                      std::to_string(limit_mb) + " MiB of dataplane.port_state_mb (at most " +
                      std::to_string(limit / per) + " addresses): use fewer addresses or raise the limit");
}

NatConfig build_nat_config(uint16_t workers, const std::vector<PoolSpec>& pools,
                           const std::vector<RuleSpec>& rules) {
    NatConfig cfg;
    if (workers == 0 || workers > 128) throw ConfigError("workers must be 1..128");
    cfg.workers = workers;
    if (pools.size() > kMaxPools)
        throw ConfigError("at most " + std::to_string(kMaxPools) + " pools");

    std::unordered_map<std::string, uint16_t> by_name;
    std::unordered_map<uint32_t, std::string> owner_of_address;
    for (const PoolSpec& spec : pools) {
        const std::string where = "pool '" + spec.name + "': ";
        if (spec.name.empty()) throw ConfigError("a pool has no name");
        if (!spec.retired && by_name.count(spec.name)) throw ConfigError(where + "defined twice");
        Pool pool;
        pool.id = static_cast<uint16_t>(cfg.pools.size());
        pool.name = spec.name;
        pool.retired = spec.retired;
        pool.draining = spec.draining;
        try {
            if (!spec.retired) pool.addresses = parse_address_list(spec.addresses);
            std::tie(pool.port_min, pool.port_max) = parse_port_range(spec.ports);
            pool.policy = parse_policy(spec.policy);
        } catch (const ConfigError& e) {
            throw ConfigError(where + e.what());
        }
        for (uint32_t a : pool.addresses) {
            auto [it, fresh] = owner_of_address.emplace(a, spec.name);
            if (!fresh)
                throw ConfigError(where + "address " + format_ipv4(a) +
                                  " is already in pool '" + it->second + "'");
        }
        if (uint32_t{pool.port_max} - pool.port_min + 1 < workers)
            throw ConfigError(where + "port range " + spec.ports + " has fewer ports than the " +
                              std::to_string(workers) + " workers");
        const Timeouts& t = spec.timeouts;
        const std::pair<const char*, uint32_t> checks[] = {
            {"tcp_established", t.tcp_established}, {"tcp_transitory", t.tcp_transitory},
            {"tcp_syn_sent", t.tcp_syn_sent}, {"tcp_syn_recv", t.tcp_syn_recv}, {"udp", t.udp}, {"icmp", t.icmp}, {"linger", t.linger}};
        for (const auto& [name, value] : checks)
            if (value == 0 || value > 7 * 24 * 3600)
                throw ConfigError(where + "timeout " + name + " must be 1..604800 s");
        if (t.quarantine > 7 * 24 * 3600)
            throw ConfigError(where + "timeout quarantine must be 0..604800 s");
        pool.timeouts = t;
        pool.max_sessions_per_host = spec.max_sessions_per_host;
        pool.max_embryonic_per_host = spec.max_embryonic_per_host;
        if (!pool.retired) by_name.emplace(pool.name, pool.id);
        cfg.pools.push_back(std::move(pool));
    }

    std::set<std::pair<uint32_t, uint8_t>> seen;
    for (const RuleSpec& spec : rules) {
        const std::string where = "rule '" + spec.prefix + " -> " + spec.pool + "': ";
        Rule r;
        try {
            std::tie(r.prefix, r.length) = parse_prefix(spec.prefix);
        } catch (const ConfigError& e) {
            throw ConfigError(where + e.what());
        }
        auto it = by_name.find(spec.pool);
        if (it == by_name.end()) throw ConfigError(where + "no pool named '" + spec.pool + "'");
        if (!seen.emplace(r.prefix, r.length).second)
            throw ConfigError(where + "prefix already has a rule");
        r.pool = it->second;
        cfg.rules.push_back(r);
    }
    // Longest prefix first, so the first match is the most specific.
    std::stable_sort(cfg.rules.begin(), cfg.rules.end(),
                     [](const Rule& a, const Rule& b) { return a.length > b.length; });
    return cfg;
}

}  // namespace snatgw
