// Control API v1 requests: JSON parsing, per-command schema validation, reply lines and typed
// argument views; see control_protocol.h.
#include "control_protocol.h"

#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace snatgw {

using nlohmann::json;

namespace {

// Bounds the recursion of json copies, comparisons and dump() on hostile input such as
// 30000 nested '[': no legitimate request nests deeper than 3.
constexpr int kMaxNesting = 32;
constexpr uint32_t kMaxTimeout = 7 * 24 * 3600;
constexpr std::size_t kMaxPathLength = 4096;

const char* const kTcpStates[] = {"syn_sent",  "syn_recv",  "established", "fin_wait", "close_wait",
                                  "last_ack",  "time_wait", "closed",      "expired"};
const char* const kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

ControlError bad_request(const std::string& message) { return ControlError("bad_request", message); }

// What a field holds. String kinds are checked with the config file's parsers.
enum class Kind {
    Endpoint, Prefix, Addresses, Ports, Proto, State, Policy, Level, PoolName, Path,  // strings
    Uint, Bool, PrefixList, Timeouts
};

struct Field {
    std::string_view name;
    Kind kind;
    bool required = false;
    uint64_t min = 0, max = 0;  // Uint only
};

constexpr Field kInside{"inside", Kind::Endpoint};
constexpr Field kOutside{"outside", Kind::Endpoint};
constexpr Field kRemote{"remote", Kind::Endpoint};
constexpr Field kProto{"proto", Kind::Proto};
constexpr Field kState{"state", Kind::State};
constexpr Field kWorker{"worker", Kind::Uint, false, 0, 63};
constexpr Field kPoolFilter{"pool", Kind::PoolName};
constexpr Field kOffset{"offset", Kind::Uint, false, 0, std::numeric_limits<uint32_t>::max()};
constexpr Field kLimit{"limit", Kind::Uint, false, 1, 10000};
constexpr Field kCountOnly{"count_only", Kind::Bool};
constexpr Field kAll{"all", Kind::Bool};
constexpr Field kName{"name", Kind::PoolName, true};
constexpr Field kAddresses{"addresses", Kind::Addresses, true};
constexpr Field kAddAddresses{"add_addresses", Kind::Addresses};
constexpr Field kDelAddresses{"del_addresses", Kind::Addresses};
constexpr Field kPorts{"ports", Kind::Ports};
constexpr Field kPolicy{"policy", Kind::Policy};
constexpr Field kPolicyRequired{"policy", Kind::Policy, true};
constexpr Field kTimeouts{"timeouts", Kind::Timeouts};
constexpr Field kTimeoutsRequired{"timeouts", Kind::Timeouts, true};
constexpr Field kMaxPerHost{"max_sessions_per_host", Kind::Uint, false, 0, std::numeric_limits<uint32_t>::max()};
constexpr Field kMaxEmbryonicPerHost{"max_embryonic_per_host", Kind::Uint, false, 0, std::numeric_limits<uint32_t>::max()};
constexpr Field kRules{"rules", Kind::PrefixList};
constexpr Field kPoolRequired{"pool", Kind::PoolName, true};
constexpr Field kLevel{"level", Kind::Level, true};
constexpr Field kPath{"path", Kind::Path};

const Field kFilterFields[] = {kInside, kOutside, kRemote, kProto, kState, kWorker, kPoolFilter};

struct TimeoutField {
    std::string_view name;
    std::optional<uint32_t> PartialTimeouts::*member;
    uint32_t Timeouts::*full;
    uint32_t min;
};
const TimeoutField kTimeoutFields[] = {
    {"tcp_established", &PartialTimeouts::tcp_established, &Timeouts::tcp_established, 1},
    {"tcp_transitory", &PartialTimeouts::tcp_transitory, &Timeouts::tcp_transitory, 1},
    {"tcp_syn_sent", &PartialTimeouts::tcp_syn_sent, &Timeouts::tcp_syn_sent, 1},
    {"tcp_syn_recv", &PartialTimeouts::tcp_syn_recv, &Timeouts::tcp_syn_recv, 1},
    {"udp", &PartialTimeouts::udp, &Timeouts::udp, 1},
    {"icmp", &PartialTimeouts::icmp, &Timeouts::icmp, 1},
    {"quarantine", &PartialTimeouts::quarantine, &Timeouts::quarantine, 0},
    {"linger", &PartialTimeouts::linger, &Timeouts::linger, 1},
};

std::string where(std::string_view field) { return "args." + std::string(field); }

std::string join_names(const std::vector<Field>& fields) {
    if (fields.empty()) return "none";
    std::string out;
    for (const Field& f : fields) out += (out.empty() ? "" : ", ") + std::string(f.name);
    return out;
}

// An integer JSON value within [min, max], or nullopt (floats, negatives and strings included).
std::optional<uint64_t> integer_in(const json& v, uint64_t min, uint64_t max) {
    uint64_t u = 0;
    if (v.is_number_unsigned()) {
        u = v.get<uint64_t>();
    } else if (v.is_number_integer()) {
        const int64_t i = v.get<int64_t>();
        if (i < 0) return std::nullopt;
        u = static_cast<uint64_t>(i);
    } else {
        return std::nullopt;
    }
    if (u < min || u > max) return std::nullopt;
    return u;
}

bool one_of(std::string_view s, const auto& names) {
    return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return s == n; });
}

std::string list(const auto& names) {
    std::string out;
    for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

PartialTimeouts timeouts_of(const json& v, const std::string& name) {
    if (!v.is_object()) throw bad_request(name + " must be an object of timeouts in seconds");
    PartialTimeouts out;
    for (const auto& [key, value] : v.items()) {
        const auto* f = std::find_if(std::begin(kTimeoutFields), std::end(kTimeoutFields),
                                     [&, &key = key](const TimeoutField& t) { return t.name == key; });
        if (f == std::end(kTimeoutFields))
            throw bad_request(name + "." + key +
                              " is not a timeout (expected: tcp_established, tcp_transitory, "
                              "tcp_syn_sent, tcp_syn_recv, udp, icmp, quarantine, linger)");
        const auto secs = integer_in(value, f->min, kMaxTimeout);
        if (!secs)
            throw bad_request(name + "." + key + " must be an integer " + std::to_string(f->min) +
                              ".." + std::to_string(kMaxTimeout) + " (seconds)");
        out.*(f->member) = static_cast<uint32_t>(*secs);
    }
    return out;
}

// Checks one value against its field; throws bad_request naming args.<field>.
void check_value(const Field& f, const json& v) {
    const std::string name = where(f.name);
    switch (f.kind) {
        case Kind::Uint:
            if (!integer_in(v, f.min, f.max))
                throw bad_request(name + " must be an integer " + std::to_string(f.min) + ".." +
                                  std::to_string(f.max));
            return;
        case Kind::Bool:
            if (!v.is_boolean()) throw bad_request(name + " must be true or false");
            return;
        case Kind::Timeouts:
            (void)timeouts_of(v, name);
            return;
        case Kind::PrefixList:
            if (!v.is_array()) throw bad_request(name + " must be an array of prefixes");
            for (std::size_t i = 0; i < v.size(); ++i) {
                const std::string item = name + "[" + std::to_string(i) + "]";
                if (!v[i].is_string()) throw bad_request(item + " must be a prefix string");
                try {
                    (void)parse_prefix(v[i].get_ref<const std::string&>());
                } catch (const ConfigError& e) {
                    throw bad_request(item + ": " + e.what());
                }
            }
            return;
        default:
            break;
    }
    if (!v.is_string()) throw bad_request(name + " must be a string");
    const std::string& s = v.get_ref<const std::string&>();
    try {
        switch (f.kind) {
            case Kind::Endpoint: (void)parse_endpoint(s); break;
            case Kind::Prefix: (void)parse_prefix(s); break;
            case Kind::Addresses: (void)parse_address_list(s); break;
            case Kind::Ports: (void)parse_port_range(s); break;
            case Kind::Proto: (void)parse_proto(s); break;
            case Kind::Policy: (void)parse_policy(s); break;
            case Kind::State:
                if (!one_of(s, kTcpStates) && s != "udp" && s != "icmp")
                    throw ConfigError("'" + s + "' is not a state (" + list(kTcpStates) + ", udp, icmp)");
                break;
            case Kind::Level:
                if (!one_of(s, kLevels))
                    throw ConfigError("'" + s + "' is not a log level (" + list(kLevels) + ")");
                break;
            case Kind::PoolName:
                if (!is_valid_pool_name(s))
                    throw ConfigError("'" + s + "' is not a pool name ([A-Za-z0-9_-], 1 to 32 characters)");
                break;
            case Kind::Path:
                if (s.empty() || s.front() != '/' || s.size() > kMaxPathLength ||
                    s.find('\0') != std::string::npos)
                    throw ConfigError("'" + s + "' is not an absolute path");
                break;
            default:
                break;
        }
    } catch (const ConfigError& e) {
        throw bad_request(name + ": " + e.what());
    }
}

// The value of a field if present (checked), else nullptr. `args` must be an object.
const json* get(const json& args, const Field& f) {
    if (!args.is_object()) throw bad_request("args must be an object");
    const auto it = args.find(f.name);
    if (it == args.end()) {
        if (f.required) throw bad_request(where(f.name) + " is required");
        return nullptr;
    }
    check_value(f, *it);
    return &*it;
}

std::optional<std::string> get_string(const json& args, const Field& f) {
    const json* v = get(args, f);
    if (!v) return std::nullopt;
    return v->get<std::string>();
}

std::optional<uint64_t> get_uint(const json& args, const Field& f) {
    const json* v = get(args, f);
    if (!v) return std::nullopt;
    return integer_in(*v, f.min, f.max);
}

bool get_bool(const json& args, const Field& f) {
    const json* v = get(args, f);
    return v && v->get<bool>();
}

std::vector<std::string> get_prefixes(const json& args, const Field& f) {
    const json* v = get(args, f);
    std::vector<std::string> out;
    if (v)
        for (const json& p : *v) out.push_back(p.get<std::string>());
    return out;
}

// A state only some protocols have, combined with another protocol, matches nothing: a mistake.
void check_state_matches_proto(const SessionFilter& f) {
    if (!f.state || !f.proto) return;
    const uint8_t needs = *f.state == "udp" ? IPPROTO_UDP : *f.state == "icmp" ? IPPROTO_ICMP : IPPROTO_TCP;
    if (needs != *f.proto)
        throw bad_request("args.state '" + *f.state + "' is not a state of proto '" +
                          proto_name(*f.proto) + "'");
}

// Command-level rules beyond single fields.
void check_sessions(const json& args) { (void)parse_session_query(args); }

void check_flush(const json& args) {
    const SessionFilter f = parse_session_filter(args);
    if (f.all && !f.empty())
        throw bad_request("args.all cannot be combined with filter fields");
    if (!f.all && f.empty())
        throw bad_request("sessions.flush needs at least one filter field or \"all\": true");
}

void check_pool_set(const json& args) {
    const PoolSetRequest r = parse_pool_set(args);
    if (!r.add_addresses && !r.del_addresses && !r.ports && !r.max_sessions_per_host &&
        !r.max_embryonic_per_host && !r.rules)
        throw bad_request("pool.set needs at least one of args.add_addresses, args.del_addresses, "
                          "args.ports, args.max_sessions_per_host, args.max_embryonic_per_host, "
                          "args.rules");
}

void check_timeouts_set(const json& args) {
    if (const json* v = get(args, kTimeoutsRequired); v && timeouts_of(*v, "args.timeouts").empty())
        throw bad_request("args.timeouts must name at least one timeout");
}

struct Schema {
    std::string_view command;
    std::vector<Field> fields;
    void (*check)(const json& args) = nullptr;
};

const std::vector<Schema>& schemas() {
    static const std::vector<Schema> all = [] {
        std::vector<Field> filter(std::begin(kFilterFields), std::end(kFilterFields));
        std::vector<Field> sessions = filter;
        sessions.insert(sessions.end(), {kOffset, kLimit, kCountOnly});
        std::vector<Field> flush = filter;
        flush.push_back(kAll);
        return std::vector<Schema>{
            {"version", {}},
            {"stats", {}},
            {"pools", {}},
            {"sessions", sessions, check_sessions},
            {"sessions.flush", flush, check_flush},
            {"pool.add", {kName, kAddresses, kPorts, kPolicy, kTimeouts, kMaxPerHost, kMaxEmbryonicPerHost, kRules}},
            {"pool.del", {kName}},
            {"pool.set", {kName, kAddAddresses, kDelAddresses, kPorts, kMaxPerHost, kMaxEmbryonicPerHost, kRules}, check_pool_set},
            {"policy.set", {kPoolRequired, kPolicyRequired}},
            {"timeouts.set", {kPoolRequired, kTimeoutsRequired}, check_timeouts_set},
            {"log.level", {kLevel}},
            {"save", {kPath}},
        };
    }();
    return all;
}

// Rejects input nested deeper than kMaxNesting before nlohmann builds it (its tree operations
// recurse). Brackets inside strings do not count.
void check_nesting(std::string_view line) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : line) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxNesting)
                throw ControlError("parse_error", "request nests deeper than " + std::to_string(kMaxNesting) + " levels");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

json parse_json(std::string_view line) {
    check_nesting(line);
    try {
        return json::parse(line.begin(), line.end());
    } catch (const json::exception& e) {
        // Syntax errors, and numbers out of range (1e999: out_of_range), alike.
        // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
        std::string what = e.what();
        if (const std::size_t p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
        throw ControlError("parse_error", "request is not valid JSON: " + what);
    }
}

std::string reply_line(json reply) {
    // replace: an invalid UTF-8 byte in a handler's string never turns a reply into an exception.
    return reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------------------------

const std::vector<std::string>& control_commands() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const Schema& s : schemas()) out.emplace_back(s.command);
        return out;
    }();
    return names;
}

ControlRequest validate_request(const json& request) {
    if (!request.is_object()) throw bad_request("a request must be a JSON object");
    ControlRequest out;
    if (const auto v = request.find("version"); v != request.end()) {
        if (!v->is_number_integer()) throw bad_request("version must be an integer");
        if (!integer_in(*v, kControlProtocolVersion, kControlProtocolVersion))
            throw ControlError("unsupported_version", "protocol version " + v->dump() +
                               " is not supported (this daemon speaks " +
                               std::to_string(kControlProtocolVersion) + ")");
    }
    for (const auto& [key, value] : request.items())
        if (key != "version" && key != "command" && key != "args" && key != "id")
            throw bad_request("'" + key + "' is not a request field (expected: version, command, args, id)");
    const auto command = request.find("command");
    if (command == request.end()) throw bad_request("command is required");
    if (!command->is_string()) throw bad_request("command must be a string");
    out.command = command->get<std::string>();
    if (const auto id = request.find("id"); id != request.end()) out.id = *id;

    const auto& all = schemas();
    const auto schema = std::find_if(all.begin(), all.end(),
                                     [&](const Schema& s) { return s.command == out.command; });
    if (schema == all.end()) throw ControlError("unknown_command", "'" + out.command + "' is not a command");

    if (const auto args = request.find("args"); args != request.end()) {
        if (!args->is_object()) throw bad_request("args must be an object");
        out.args = *args;
    }
    for (const auto& [key, value] : out.args.items()) {
        const bool known = std::any_of(schema->fields.begin(), schema->fields.end(),
                                       [&, &key = key](const Field& f) { return f.name == key; });
        if (!known)
            throw bad_request(where(key) + " is not an argument of " + out.command +
                              " (expected: " + join_names(schema->fields) + ")");
    }
    for (const Field& f : schema->fields) (void)get(out.args, f);
    if (schema->check) schema->check(out.args);
    return out;
}

ControlRequest parse_request(std::string_view line) { return validate_request(parse_json(line)); }

std::string ok_reply(const json& id, json result) {
    json reply = {{"version", kControlProtocolVersion}, {"ok", true}};
    if (!id.is_null()) reply["id"] = id;
    reply["result"] = std::move(result);
    return reply_line(std::move(reply));
}

std::string error_reply(const json& id, std::string code, std::string message) {
    json reply = {{"version", kControlProtocolVersion}, {"ok", false}};
    if (!id.is_null()) reply["id"] = id;
    reply["error"] = {{"code", std::move(code)}, {"message", std::move(message)}};
    return reply_line(std::move(reply));
}

std::string answer_request_line(std::string_view line, const ControlHandler& handler) {
    try {
        json id;
        try {
            const json request = parse_json(line);
            if (request.is_object())
                if (const auto it = request.find("id"); it != request.end()) id = *it;
            const ControlRequest parsed = validate_request(request);
            return ok_reply(id, handler(parsed));
        } catch (const ControlError& e) {
            return error_reply(id, e.code, e.what());
        } catch (const std::exception& e) {
            return error_reply(id, "internal", std::string("internal error: ") + e.what());
        } catch (...) {
            return error_reply(id, "internal", "internal error");
        }
    } catch (...) {  // building the error reply itself failed (out of memory)
        return "{\"version\":1,\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
    }
}

// ---------------------------------------------------------------------------------------------
// Typed views
// ---------------------------------------------------------------------------------------------

Timeouts PartialTimeouts::applied_to(Timeouts base) const {
    for (const TimeoutField& f : kTimeoutFields)
        if (const auto& v = this->*(f.member)) base.*(f.full) = *v;
    return base;
}

json timeouts_to_json(const Timeouts& t) {
    json out = json::object();
    for (const TimeoutField& f : kTimeoutFields) out[std::string(f.name)] = t.*(f.full);
    return out;
}

SessionFilter parse_session_filter(const json& args) {
    SessionFilter f;
    if (auto s = get_string(args, kInside)) f.inside = parse_endpoint(*s);
    if (auto s = get_string(args, kOutside)) f.outside = parse_endpoint(*s);
    if (auto s = get_string(args, kRemote)) f.remote = parse_endpoint(*s);
    if (auto s = get_string(args, kProto)) f.proto = parse_proto(*s);
    f.state = get_string(args, kState);
    if (auto w = get_uint(args, kWorker)) f.worker = static_cast<uint16_t>(*w);
    f.pool = get_string(args, kPoolFilter);
    f.all = get_bool(args, kAll);
    check_state_matches_proto(f);
    return f;
}

SessionQuery parse_session_query(const json& args) {
    SessionQuery q;
    q.filter = parse_session_filter(args);
    if (auto v = get_uint(args, kOffset)) q.offset = static_cast<uint32_t>(*v);
    if (auto v = get_uint(args, kLimit)) q.limit = static_cast<uint32_t>(*v);
    q.count_only = get_bool(args, kCountOnly);
    return q;
}

PartialTimeouts parse_timeouts(const json& timeouts) { return timeouts_of(timeouts, "args.timeouts"); }

PoolAddRequest parse_pool_add(const json& args) {
    PoolAddRequest r;
    r.spec.name = *get_string(args, kName);
    r.spec.addresses = *get_string(args, kAddresses);
    if (auto s = get_string(args, kPorts)) r.spec.ports = *s;
    if (auto s = get_string(args, kPolicy)) r.spec.policy = *s;
    if (const json* t = get(args, kTimeouts)) r.timeouts = parse_timeouts(*t);
    r.spec.timeouts = r.timeouts.applied_to(Timeouts{});
    if (auto v = get_uint(args, kMaxPerHost)) r.spec.max_sessions_per_host = static_cast<uint32_t>(*v);
    if (auto v = get_uint(args, kMaxEmbryonicPerHost)) r.spec.max_embryonic_per_host = static_cast<uint32_t>(*v);
    r.rules = get_prefixes(args, kRules);
    return r;
}

PoolSetRequest parse_pool_set(const json& args) {
    PoolSetRequest r;
    r.name = *get_string(args, kName);
    r.add_addresses = get_string(args, kAddAddresses);
    r.del_addresses = get_string(args, kDelAddresses);
    r.ports = get_string(args, kPorts);
    if (auto v = get_uint(args, kMaxPerHost)) r.max_sessions_per_host = static_cast<uint32_t>(*v);
    if (auto v = get_uint(args, kMaxEmbryonicPerHost)) r.max_embryonic_per_host = static_cast<uint32_t>(*v);
    if (get(args, kRules)) r.rules = get_prefixes(args, kRules);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Value syntax
// ---------------------------------------------------------------------------------------------

Endpoint parse_endpoint(std::string_view text) {
    Endpoint e;
    const std::size_t colon = text.find(':');
    e.addr = parse_ipv4(text.substr(0, colon));
    if (colon != std::string_view::npos) {
        const std::string_view p = text.substr(colon + 1);
        unsigned port = 0;
        const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
        if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || port > 65535)
            throw ConfigError("'" + std::string(text) + "' is not an endpoint (address or address:port, port 0..65535)");
        e.port = static_cast<uint16_t>(port);
    }
    return e;
}

std::string format_endpoint(uint32_t addr, uint16_t port) {
    return format_ipv4(addr) + ":" + std::to_string(port);
}

uint8_t parse_proto(std::string_view text) {
    if (text == "tcp") return IPPROTO_TCP;
    if (text == "udp") return IPPROTO_UDP;
    if (text == "icmp") return IPPROTO_ICMP;
    throw ConfigError("'" + std::string(text) + "' is not a protocol (tcp, udp, icmp)");
}

const char* proto_name(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        default: return "?";
    }
}

bool is_valid_pool_name(std::string_view name) {
    if (name.empty() || name.size() > 32) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
    });
}

}  // namespace snatgw
