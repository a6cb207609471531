// libFuzzer harness: the control socket's request parser (control/control_protocol.h), i.e.
// what any local client can send to the daemon.
//
// Input: one request line (cut at the first '\n' and at 65536 bytes, as the server frames
// requests).
//
// Asserted:
//   - answer_request_line never throws and returns exactly one line: a JSON object with
//     "version": 1, a boolean "ok", a "result" (ok) or an "error" with a known code and a
//     message; the request's id echoed when the line was an object carrying a non-null id;
//   - parse_request either throws ControlError with one of its four codes or returns a known
//     command with object args, and agrees with answer_request_line on success;
//   - the typed views (session filter and query, pool.add, pool.set, timeouts) throw nothing but
//     ControlError, on validated args and on raw ones alike; a pool.add that passes builds an
//     engine configuration or fails with ConfigError;
//   - the value parsers (endpoint, proto, pool name) on the raw line: ConfigError or a value
//     that formats and parses back to itself.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <set>
#include <string>
#include <string_view>
#include <typeinfo>

#include "control_protocol.h"
#include "fuzz_support.h"

namespace snatgw::fuzz {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxLine = 65536;

const std::set<std::string> kReplyCodes = {"parse_error", "bad_request", "unknown_command",
                                           "unsupported_version", "request_too_large", "busy",
                                           "not_found", "conflict", "invalid_config", "internal"};
const std::set<std::string> kParseCodes = {"parse_error", "bad_request", "unsupported_version",
                                           "unknown_command"};

// Runs f; only ControlError (whose code is in `codes`, when given) may leave it.
template <typename F>
bool only_control_errors(const char* what, F&& f, const std::set<std::string>* codes = nullptr) {
    try {
        f();
        return true;
    } catch (const ControlError& e) {
        FUZZ_CHECK(!codes || codes->count(e.code), "%s: ControlError with code '%s'", what, e.code.c_str());
        FUZZ_CHECK(std::string_view(e.what()).size() > 0, "%s: ControlError without a message", what);
        return false;
    } catch (const std::exception& e) {
        fail("%s threw %s (not ControlError): %s", what, typeid(e).name(), e.what());
    } catch (...) {
        fail("%s threw something that is not a std::exception", what);
    }
}

// The daemon's side, as far as the protocol goes: the typed views of every command's args.
json handle(const ControlRequest& r) {
    json result = json::object();
    if (r.command == "sessions") {
        const SessionQuery q = parse_session_query(r.args);
        result["limit"] = q.limit;
    } else if (r.command == "sessions.flush") {
        const SessionFilter f = parse_session_filter(r.args);
        result["all"] = f.all;
    } else if (r.command == "pool.add") {
        const PoolAddRequest p = parse_pool_add(r.args);
        if (p.spec.name == "taken") throw ControlError("conflict", "pool 'taken' exists");
        result["name"] = p.spec.name;
    } else if (r.command == "pool.set") {
        const PoolSetRequest p = parse_pool_set(r.args);
        if (p.name == "missing") throw ControlError("not_found", "no pool 'missing'");
        result["name"] = p.name;
    } else if (r.command == "timeouts.set") {
        result["timeouts"] = timeouts_to_json(parse_timeouts(r.args.at("timeouts")).applied_to(Timeouts{}));
    } else if (r.command == "pool.del" && r.args.value("name", "") == "boom") {
        throw std::runtime_error("handler failure");  // must become an "internal" error reply
    }
    return result;
}

// Compares ids after a dump (a parsed 1e400 is +inf, which a reply writes as null).
std::string normalised(const json& j) { return json::parse(j.dump(-1, ' ', false, json::error_handler_t::replace)).dump(); }

// Depth of [ and { outside strings (the protocol refuses lines deeper than kMaxNesting).
constexpr int kMaxNesting = 32;
int nesting(std::string_view line) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : line) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

void check_reply(std::string_view line, const std::string& reply, const json* request) {
    FUZZ_CHECK(!reply.empty() && reply.back() == '\n' && reply.find('\n') == reply.size() - 1,
               "a reply is not exactly one line: %s", reply.c_str());
    json r;
    try {
        r = json::parse(reply);
    } catch (const std::exception& e) {
        fail("the reply is not JSON (%s): %s", e.what(), reply.c_str());
    }
    FUZZ_CHECK(r.is_object() && r.value("version", 0) == kControlProtocolVersion && r.contains("ok") &&
                   r["ok"].is_boolean(), "malformed reply: %s", reply.c_str());
    if (r["ok"].get<bool>()) {
        FUZZ_CHECK(r.contains("result") && !r.contains("error"), "ok reply without result: %s", reply.c_str());
    } else {
        FUZZ_CHECK(r.contains("error") && r["error"].is_object() && r["error"].contains("code") &&
                       r["error"]["code"].is_string() && kReplyCodes.count(r["error"]["code"].get<std::string>()) &&
                       r["error"].contains("message") && r["error"]["message"].is_string() &&
                       !r["error"]["message"].get<std::string>().empty(),
                   "malformed error reply: %s", reply.c_str());
    }
    const bool has_id = request && request->is_object() && request->contains("id") && !(*request)["id"].is_null();
    if (has_id && !r["ok"].get<bool>() && r["error"]["code"] == "parse_error") {
        // Valid JSON refused as a parse error: only for nesting beyond the protocol's limit,
        // which is checked before the id can be read.
        FUZZ_CHECK(nesting(line) > kMaxNesting, "valid JSON (nesting %d) answered parse_error: %s",
                   nesting(line), reply.c_str());
    } else if (has_id) {
        FUZZ_CHECK(r.contains("id") && normalised(r["id"]) == normalised((*request)["id"]),
                   "the reply does not echo the id: %s", reply.c_str());
    } else {
        FUZZ_CHECK(!r.contains("id") || r["id"].is_null(), "a reply with an id the request did not carry: %s",
                   reply.c_str());
    }
}

void check_value_parsers(std::string_view text) {
    try {
        const Endpoint e = parse_endpoint(text);
        const std::string back = e.port ? format_endpoint(e.addr, *e.port) : format_ipv4(e.addr);
        const Endpoint again = parse_endpoint(back);
        FUZZ_CHECK(again == e, "endpoint '%s' -> '%s' parses to something else", std::string(text).c_str(),
                   back.c_str());
    } catch (const ConfigError&) {
    }
    try {
        const uint8_t p = parse_proto(text);
        FUZZ_CHECK(p == kProtoTcp || p == kProtoUdp || p == kProtoIcmp, "proto %u", p);
        FUZZ_CHECK(parse_proto(proto_name(p)) == p, "proto name round trip");
    } catch (const ConfigError&) {
    }
    const bool name_ok = !text.empty() && text.size() <= 32 &&
                         std::all_of(text.begin(), text.end(), [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                         });
    FUZZ_CHECK(is_valid_pool_name(text) == name_ok, "is_valid_pool_name('%s') = %d",
               std::string(text).c_str(), !name_ok);
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw;
    using namespace snatgw::fuzz;
    std::string_view line(reinterpret_cast<const char*>(data), std::min(size, kMaxLine));
    line = line.substr(0, line.find('\n'));

    // The exchange as the server runs it.
    std::string reply;
    only_control_errors("answer_request_line", [&] { reply = answer_request_line(line, handle); });
    // The harness's own parse of the line, to know the id (skipped for very deep nesting, which
    // nlohmann would recurse through; the protocol refuses it anyway).
    json request;
    bool is_json = false;
    if (std::count_if(line.begin(), line.end(), [](char c) { return c == '[' || c == '{'; }) <= 1000) {
        try {
            request = json::parse(line);
            is_json = true;
        } catch (const std::exception&) {
        }
        check_reply(line, reply, is_json ? &request : nullptr);
    }

    // The parser alone.
    ControlRequest parsed;
    const bool valid = only_control_errors("parse_request", [&] { parsed = parse_request(line); }, &kParseCodes);
    if (valid) {
        const auto& commands = control_commands();
        FUZZ_CHECK(std::find(commands.begin(), commands.end(), parsed.command) != commands.end(),
                   "parse_request accepted command '%s'", parsed.command.c_str());
        FUZZ_CHECK(parsed.args.is_object(), "args is not an object");
        const json r = json::parse(reply);
        bool handled = true;
        try {
            (void)handle(parsed);
        } catch (...) {
            handled = false;
        }
        FUZZ_CHECK(r["ok"].get<bool>() == handled, "parse_request accepted, the reply says ok=%d: %s",
                   r["ok"].get<bool>(), reply.c_str());
        if (parsed.command == "pool.add") {
            PoolAddRequest p;
            if (only_control_errors("parse_pool_add (validated)", [&] { p = parse_pool_add(parsed.args); })) {
                FUZZ_CHECK(is_valid_pool_name(p.spec.name), "pool.add accepted name '%s'", p.spec.name.c_str());
                std::vector<RuleSpec> rules;
                for (const std::string& prefix : p.rules) rules.push_back({prefix, p.spec.name});
                try {
                    (void)build_nat_config(1, {p.spec}, rules);
                } catch (const ConfigError&) {
                } catch (const std::exception& e) {
                    fail("build_nat_config on a validated pool.add threw %s: %s", typeid(e).name(), e.what());
                }
            }
        }
    }

    // The typed views on raw args ("safe on raw args too").
    if (is_json && request.is_object() && request.contains("args")) {
        const json& args = request["args"];
        only_control_errors("parse_session_query", [&] { (void)parse_session_query(args); });
        only_control_errors("parse_session_filter", [&] { (void)parse_session_filter(args); });
        only_control_errors("parse_pool_add", [&] { (void)parse_pool_add(args); });
        only_control_errors("parse_pool_set", [&] { (void)parse_pool_set(args); });
        only_control_errors("parse_timeouts", [&] { (void)parse_timeouts(args); });
    }

    check_value_parsers(line);
    return 0;
}
