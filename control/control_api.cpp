// Control requests against the running gateway; see control_api.h.
#include "control_api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "port_allocator.h"

namespace snatgw {

using nlohmann::json;

namespace {

constexpr PortSpace kSpaces[] = {PortSpace::Tcp, PortSpace::Udp, PortSpace::Icmp};
constexpr const char* kSpaceNames[] = {"tcp", "udp", "icmp"};

std::vector<uint32_t> minus(std::vector<uint32_t> from, const std::vector<uint32_t>& take) {
    const std::set<uint32_t> t(take.begin(), take.end());
    std::erase_if(from, [&](uint32_t a) { return t.count(a) != 0; });
    return from;
}

}  // namespace

std::string format_address_list(std::vector<uint32_t> addrs) {
    std::sort(addrs.begin(), addrs.end());
    addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
    std::string out;
    for (std::size_t i = 0; i < addrs.size();) {
        std::size_t j = i;
        while (j + 1 < addrs.size() && addrs[j + 1] == addrs[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += format_ipv4(addrs[i]);
        if (j > i) {
            out += '-';  // (two appends: GCC 12's -Wrestrict misfires on "-" + string at -O3)
            out += format_ipv4(addrs[j]);
        }
        i = j + 1;
    }
    return out;
}

ControlApi::ControlApi(ControlApiDeps deps) : d_(std::move(deps)) {}

bool ControlApi::address_in_use(uint32_t addr_net) const {
    for (const NatWorker* e : d_.engines)
        if (e->ports().sessions_on(addr_net) != 0) return true;
    return false;
}

json ControlApi::handle(const ControlRequest& r) {
    const std::string& c = r.command;
    if (c == "version") return {{"daemon", "snatgw"}, {"version", "0.1.0"}, {"protocol", kControlProtocolVersion}};
    if (c == "stats") return d_.stats();
    if (c == "pools") return pools();
    if (c == "sessions") return sessions(r.args);
    if (c == "sessions.flush") return flush(r.args);
    if (c == "pool.add") return pool_add(r.args);
    if (c == "pool.del") return pool_del(r.args);
    if (c == "pool.set") return pool_set(r.args);
    if (c == "policy.set") return policy_set(r.args);
    if (c == "timeouts.set") return timeouts_set(r.args);
    if (c == "log.level") return log_level(r.args);
    if (c == "save") return save(r.args);
    throw ControlError("unknown_command", "unknown command '" + c + "'");
}

// --- reading -------------------------------------------------------------------------------

json ControlApi::pool_json(const PoolSpec& spec, int id) const {
    json rules = json::array();
    for (const RuleSpec& r : d_.live->rules())
        if (r.pool == spec.name && !spec.retired) rules.push_back(r.prefix);
    json draining = json::array();
    for (uint32_t a : spec.draining) draining.push_back(format_ipv4(a));
    json in_use = json::object();
    const Pool& pool = d_.live->current().pools[static_cast<std::size_t>(id)];
    std::vector<uint32_t> all = pool.addresses;
    all.insert(all.end(), spec.draining.begin(), spec.draining.end());
    for (uint32_t a : all) {
        json per = json::object();
        for (int s = 0; s < 3; ++s) {
            json w = json::array();
            for (const NatWorker* e : d_.engines) w.push_back(e->ports().ports_in_use(htonl(a), kSpaces[s]));
            per[kSpaceNames[s]] = w;
        }
        in_use[format_ipv4(a)] = per;
    }
    json addresses = json::array();
    for (uint32_t a : pool.addresses) addresses.push_back(format_ipv4(a));
    return {{"name", spec.name},
            {"id", id},
            {"deleted", spec.retired},
            {"addresses", addresses},
            {"draining", draining},
            {"ports", spec.ports},
            {"policy", spec.policy},
            {"timeouts", timeouts_to_json(spec.timeouts)},
            {"max_sessions_per_host", spec.max_sessions_per_host},
            {"max_embryonic_per_host", spec.max_embryonic_per_host},
            {"rules", rules},
            {"ports_in_use", in_use}};
}

json ControlApi::pools() const {
    json out = json::array();
    const auto& specs = d_.live->pools();
    for (std::size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].retired && specs[i].draining.empty()) continue;  // a free slot
        out.push_back(pool_json(specs[i], static_cast<int>(i)));
    }
    return {{"pools", out}};
}

int ControlApi::pool_index(const std::string& name) const {
    const int i = d_.live->find_pool(name);
    if (i < 0) throw ControlError("not_found", "no pool named '" + name + "'");
    return i;
}

SessionMatch ControlApi::to_match(const SessionFilter& f) const {
    SessionMatch m;
    auto endpoint = [](const std::optional<Endpoint>& e, EndpointMatch& out) {
        if (!e) return;
        out.any_addr = false;
        out.addr = htonl(e->addr);
        if (e->port) {
            out.any_port = false;
            out.port = htons(*e->port);
        }
    };
    endpoint(f.inside, m.inside);
    endpoint(f.outside, m.outside);
    endpoint(f.remote, m.remote);
    if (f.proto) m.proto = *f.proto;
    if (f.state) {
        if (*f.state == "udp") {
            m.proto = IPPROTO_UDP;
        } else if (*f.state == "icmp") {
            m.proto = IPPROTO_ICMP;
        } else {
            for (int s = 1; s < static_cast<int>(TcpState::Count); ++s)
                if (*f.state == tcp_state_name(static_cast<TcpState>(s))) m.state = static_cast<int16_t>(s);
            if (m.state < 0) throw ControlError("bad_request", "state: unknown state '" + *f.state + "'");
            m.proto = IPPROTO_TCP;
        }
    }
    if (f.pool) m.pool = pool_index(*f.pool);
    return m;
}

std::vector<uint16_t> ControlApi::workers_for(const SessionFilter& f) const {
    std::vector<uint16_t> out;
    for (uint16_t w = 0; w < d_.mailboxes.size(); ++w)
        if (!f.worker || *f.worker == w) out.push_back(w);
    if (f.worker && out.empty())
        throw ControlError("bad_request", "worker: there are " + std::to_string(d_.mailboxes.size()) + " workers");
    return out;
}

void ControlApi::ask(uint16_t worker, WorkerMailbox::Op op, const SessionMatch& m, uint64_t skip,
                     uint32_t max, uint64_t& matched, uint32_t& copied) {
    WorkerMailbox& mb = *d_.mailboxes[worker];
    if (mb.posted.load() != mb.done.load())
        throw ControlError("internal", "worker " + std::to_string(worker) + " is still busy with an earlier request");
    mb.op = op;
    mb.match = m;
    mb.skip = skip;
    mb.max = max;
    const uint32_t ticket = mb.posted.load(std::memory_order_relaxed) + 1;
    mb.posted.store(ticket, std::memory_order_release);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(d_.mailbox_timeout_ms);
    while (mb.done.load(std::memory_order_acquire) != ticket) {
        if (std::chrono::steady_clock::now() > deadline)
            throw ControlError("internal", "worker " + std::to_string(worker) + " did not answer within " +
                                               std::to_string(d_.mailbox_timeout_ms) + " ms");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    matched = mb.matched;
    copied = mb.copied;
}

json ControlApi::sessions(const json& args) {
    const SessionQuery q = parse_session_query(args);
    const SessionMatch m = to_match(q.filter);
    const uint32_t want = q.count_only ? 0 : std::min(q.limit, WorkerMailbox::kMaxRecords);
    std::vector<SessionRecord> records;
    records.reserve(want);
    uint64_t total = 0, skip = q.offset;
    for (uint16_t w : workers_for(q.filter)) {
        uint64_t matched = 0;
        uint32_t copied = 0;
        ask(w, WorkerMailbox::Op::Query, m, skip, want - static_cast<uint32_t>(records.size()),
            matched, copied);
        const auto& got = d_.mailboxes[w]->records;
        records.insert(records.end(), got.begin(), got.begin() + copied);
        total += matched;
        skip = skip > matched ? skip - matched : 0;
    }
    const uint32_t have = static_cast<uint32_t>(records.size());
    json result = {{"total", total}};
    if (q.count_only) return result;
    const auto& pools = d_.live->current().pools;
    json list = json::array();
    for (uint32_t i = 0; i < have; ++i) {
        const Session& s = records[i].session;
        const char* state = s.proto == IPPROTO_TCP ? tcp_state_name(s.state) : proto_name(s.proto);
        list.push_back({{"worker", records[i].worker},
                        {"proto", proto_name(s.proto)},
                        {"state", state},
                        {"inside", format_endpoint(ntohl(s.inside_addr), ntohs(s.inside_port))},
                        {"outside", format_endpoint(ntohl(s.outside_addr), ntohs(s.outside_port))},
                        {"remote", format_endpoint(ntohl(s.remote_addr), ntohs(s.remote_port))},
                        {"pool", s.pool_id < pools.size() ? pools[s.pool_id].name : "?"},
                        {"idle_ms", records[i].idle_ms}});
    }
    result["sessions"] = list;
    result["offset"] = q.offset;
    return result;
}

json ControlApi::flush(const json& args) {
    const SessionFilter f = parse_session_filter(args);
    if (f.empty() && !f.all)
        throw ControlError("bad_request", "sessions.flush needs a filter, or \"all\": true");
    const SessionMatch m = to_match(f);
    uint64_t flushed = 0;
    for (uint16_t w : workers_for(f)) {
        uint64_t n = 0;
        uint32_t copied = 0;
        ask(w, WorkerMailbox::Op::Flush, m, 0, 0, n, copied);
        flushed += n;
    }
    spdlog::info("control: flushed {} session(s)", flushed);
    return {{"flushed", flushed}};
}

// --- changing -------------------------------------------------------------------------------

void ControlApi::apply(const LiveConfig::Change& change) {
    try {
        d_.live->apply(change);
    } catch (const ConfigError& e) {
        throw ControlError("invalid_config", e.what());
    }
}

json ControlApi::pool_add(const json& args) {
    const PoolAddRequest req = parse_pool_add(args);
    if (const int i = d_.live->find_pool(req.spec.name); i >= 0) {
        // Safe to repeat: the same pool again is fine, a different one is a conflict.
        const PoolSpec& cur = d_.live->pools()[static_cast<std::size_t>(i)];
        auto have = parse_address_list(cur.addresses), want = parse_address_list(req.spec.addresses);
        std::sort(have.begin(), have.end());
        std::sort(want.begin(), want.end());
        const bool same_addresses = have == want;
        std::vector<std::string> cur_rules;
        for (const RuleSpec& r : d_.live->rules())
            if (r.pool == cur.name) cur_rules.push_back(r.prefix);
        auto want_rules = req.rules;
        std::sort(cur_rules.begin(), cur_rules.end());
        std::sort(want_rules.begin(), want_rules.end());
        if (same_addresses && cur.ports == req.spec.ports && cur.policy == req.spec.policy &&
            cur.timeouts == req.spec.timeouts &&
            cur.max_sessions_per_host == req.spec.max_sessions_per_host &&
            cur.max_embryonic_per_host == req.spec.max_embryonic_per_host && cur_rules == want_rules)
            return {{"pool", pool_json(cur, i)}};
        throw ControlError("conflict", "a different pool named '" + req.spec.name + "' exists (use pool.set)");
    }
    apply([&](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        // An address it takes over may still be draining in another pool: it stays listed there
        // (that pool's slot holds its id for those sessions) until no session uses it.
        pools.push_back(req.spec);
        for (const std::string& prefix : req.rules) rules.push_back({prefix, req.spec.name});
    });
    spdlog::info("control: pool '{}' added ({})", req.spec.name, req.spec.addresses);
    const int i = pool_index(req.spec.name);
    return {{"pool", pool_json(d_.live->pools()[static_cast<std::size_t>(i)], i)}};
}

json ControlApi::pool_del(const json& args) {
    const std::string name = args.at("name").get<std::string>();
    const int i = pool_index(name);
    uint64_t draining = 0;
    SessionMatch m;
    m.pool = i;
    for (uint16_t w = 0; w < d_.mailboxes.size(); ++w) {
        uint64_t n = 0;
        uint32_t copied = 0;
        ask(w, WorkerMailbox::Op::Query, m, 0, 0, n, copied);
        draining += n;
    }
    apply([&](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        PoolSpec& p = pools[static_cast<std::size_t>(i)];
        auto addrs = parse_address_list(p.addresses);
        p.draining.insert(p.draining.end(), addrs.begin(), addrs.end());
        p.retired = true;
        std::erase_if(rules, [&](const RuleSpec& r) { return r.pool == name; });
    });
    spdlog::info("control: pool '{}' deleted; {} session(s) drain", name, draining);
    return {{"removed", name}, {"draining_sessions", draining}};
}

json ControlApi::pool_set(const json& args) {
    const PoolSetRequest req = parse_pool_set(args);
    const int i = pool_index(req.name);
    apply([&](std::vector<PoolSpec>& pools, std::vector<RuleSpec>& rules) {
        PoolSpec& p = pools[static_cast<std::size_t>(i)];
        std::vector<uint32_t> addrs = parse_address_list(p.addresses);
        if (req.add_addresses) {
            const auto add = parse_address_list(*req.add_addresses);
            // Back in this pool: no longer draining here. (Draining in another pool it stays,
            // so that pool's slot is kept for its sessions on it.)
            p.draining = minus(p.draining, add);
            addrs.insert(addrs.end(), add.begin(), add.end());
        }
        if (req.del_addresses) {
            const auto del = parse_address_list(*req.del_addresses);
            const std::set<uint32_t> have(addrs.begin(), addrs.end());
            for (uint32_t a : del)
                if (!have.count(a))
                    throw ControlError("not_found", "del_addresses: " + format_ipv4(a) + " is not in pool '" + req.name + "'");
            addrs = minus(addrs, del);
            if (addrs.empty())
                throw ControlError("invalid_config", "pool '" + req.name + "' would have no address left (use pool.del)");
            p.draining.insert(p.draining.end(), del.begin(), del.end());
        }
        p.addresses = format_address_list(addrs);
        if (req.ports) p.ports = *req.ports;
        if (req.max_sessions_per_host) p.max_sessions_per_host = *req.max_sessions_per_host;
        if (req.max_embryonic_per_host) p.max_embryonic_per_host = *req.max_embryonic_per_host;
        if (req.rules) {
            std::erase_if(rules, [&](const RuleSpec& r) { return r.pool == req.name; });
            for (const std::string& prefix : *req.rules) rules.push_back({prefix, req.name});
        }
    });
    spdlog::info("control: pool '{}' changed", req.name);
    return {{"pool", pool_json(d_.live->pools()[static_cast<std::size_t>(i)], i)}};
}

json ControlApi::policy_set(const json& args) {
    const std::string name = args.at("pool").get<std::string>();
    const std::string policy = args.at("policy").get<std::string>();
    const int i = pool_index(name);
    apply([&](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) {
        pools[static_cast<std::size_t>(i)].policy = policy;
    });
    spdlog::info("control: pool '{}' policy {}", name, policy);
    return {{"pool", name}, {"policy", policy}};
}

json ControlApi::timeouts_set(const json& args) {
    const std::string name = args.at("pool").get<std::string>();
    const PartialTimeouts t = parse_timeouts(args.at("timeouts"));
    const int i = pool_index(name);
    apply([&](std::vector<PoolSpec>& pools, std::vector<RuleSpec>&) {
        PoolSpec& p = pools[static_cast<std::size_t>(i)];
        p.timeouts = t.applied_to(p.timeouts);
    });
    spdlog::info("control: pool '{}' timeouts changed", name);
    return {{"pool", name},
            {"timeouts", timeouts_to_json(d_.live->pools()[static_cast<std::size_t>(i)].timeouts)}};
}

json ControlApi::log_level(const json& args) {
    const std::string level = args.at("level").get<std::string>();
    spdlog::set_level(spdlog::level::from_str(level));
    d_.config->log_level = level;
    return {{"level", level}};
}

json ControlApi::save(const json& args) {
    const std::string path = args.contains("path") ? args.at("path").get<std::string>() : d_.config->config_file;
    if (path.empty()) throw ControlError("bad_request", "path: the daemon has no config file path; give one");
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << render_config_file(*d_.config);
        f.close();
        if (!f) throw ControlError("internal", "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw ControlError("internal", "cannot replace " + path);
    spdlog::info("control: configuration saved to {}", path);
    return {{"path", path}};
}

}  // namespace snatgw
