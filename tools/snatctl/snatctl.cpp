// snatctl: the command-line client of snatgw's control socket (API v1, newline-delimited JSON;
// the contract is control/control_protocol.h). It turns a command line into one request, sends
// it, and prints the result as aligned tables, or as the raw JSON with --json.
//
// It stays a thin client: values (addresses, prefixes, policies...) are checked by the daemon,
// whose bad_request answer names the field. It checks only the shape of the command line.
// Exit status: 0 ok, 1 the daemon answered with an error, 2 usage error, 3 no connection or
// no answer in time.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

namespace po = boost::program_options;
using Json = nlohmann::ordered_json;  // keeps the daemon's key order for printing

namespace {

constexpr const char* kDefaultSocket = "/run/snatgw/snatgw.sock";
constexpr int kExitOk = 0, kExitReplyError = 1, kExitUsage = 2, kExitConnection = 3;
constexpr std::size_t kTableWidth = 120;  // wider tables are split into column groups

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct ConnectionError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct ReplyError : std::runtime_error {
    ReplyError(std::string c, const std::string& m) : std::runtime_error(m), code(std::move(c)) {}
    std::string code;
};

// ---------------------------------------------------------------------------------------------
// The exchange
// ---------------------------------------------------------------------------------------------

// Sends one request line and returns the reply's result; throws ReplyError for an error reply
// and ConnectionError when there is no (well-formed) answer within `timeout_s`.
Json call(const std::string& path, double timeout_s, const Json& request) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout_s));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        throw ConnectionError("socket path '" + path + "' is too long");
    std::memcpy(addr.sun_path, path.data(), path.size());

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw ConnectionError(std::string("socket: ") + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    // connect() and send() on a Unix socket wait (backlog full, peer's buffer full) up to
    // SO_SNDTIMEO.
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((timeout_s - std::floor(timeout_s)) * 1e6);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        throw ConnectionError("cannot connect to " + path + ": " +
                              (errno == EAGAIN ? "no answer in time" : std::strerror(errno)));

    std::string out = request.dump() + "\n";
    for (std::size_t sent = 0; sent < out.size();) {
        const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw ConnectionError("cannot send to " + path + ": " + std::strerror(errno));
        sent += static_cast<std::size_t>(n);
    }

    std::string in;
    std::vector<char> buf(65536);
    while (in.find('\n') == std::string::npos) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            std::ostringstream msg;
            msg << "no answer from " << path << " within " << timeout_s << " s";
            throw ConnectionError(msg.str());
        }
        pollfd p{fd, POLLIN, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) continue;  // re-checks the deadline
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw ConnectionError("cannot read from " + path + ": " + std::strerror(errno));
        if (n == 0) throw ConnectionError(path + " closed the connection without an answer");
        in.append(buf.data(), static_cast<std::size_t>(n));
    }
    in.resize(in.find('\n'));

    Json reply;
    try {
        reply = Json::parse(in);
    } catch (const Json::parse_error& e) {
        throw ConnectionError("the answer from " + path + " is not JSON: " + e.what());
    }
    if (!reply.is_object() || !reply.contains("ok") || !reply["ok"].is_boolean())
        throw ConnectionError("the answer from " + path + " is not a control API reply");
    if (!reply["ok"].get<bool>()) {
        const Json err = reply.value("error", Json::object());
        throw ReplyError(err.value("code", std::string("unknown")), err.value("message", std::string("(no message)")));
    }
    return reply.value("result", Json::object());
}

// ---------------------------------------------------------------------------------------------
// Text output
// ---------------------------------------------------------------------------------------------

std::string cell(const Json& v) {
    if (v.is_null()) return "-";
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_number_integer()) return v.dump();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        char buf[64];
        std::snprintf(buf, sizeof(buf), std::fabs(d) >= 100 ? "%.0f" : "%.2f", d);
        return buf;
    }
    if (v.is_string()) return v.get<std::string>();
    if (v.is_array()) {
        if (v.empty()) return "-";
        std::string out;
        for (const Json& e : v) out += (out.empty() ? "" : ", ") + cell(e);
        return out;
    }
    return v.dump();
}

// "1234", "-5", "12.50", "12 (5+7)": right-aligned. "198.19.0.10" is not a number.
bool is_number_text(std::string s) {
    if (const std::size_t paren = s.find(" ("); paren != std::string::npos && s.back() == ')') s.resize(paren);
    if (!s.empty() && s[0] == '-') s.erase(0, 1);
    if (s.empty() || std::count(s.begin(), s.end(), '.') > 1 || s.front() == '.' || s.back() == '.') return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

bool is_zero(const Json& v) {
    return v.is_number() && v.get<double>() == 0;
}

// An aligned table: numeric columns right-aligned, text left-aligned. Tables wider than
// kTableWidth are printed as several tables that each repeat the first column.
struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
    bool show_header = true;

    void add(std::vector<std::string> row) {
        row.resize(header.size());
        rows.push_back(std::move(row));
    }

    void print(std::ostream& os, const std::string& indent = "") const {
        const std::size_t n = header.size();
        if (n == 0) return;
        std::vector<std::size_t> width(n);
        std::vector<bool> right(n, true);
        for (std::size_t c = 0; c < n; ++c) {
            width[c] = header[c].size();
            bool any = false;
            for (const auto& r : rows) {
                width[c] = std::max(width[c], r[c].size());
                if (!r[c].empty() && r[c] != "-") {
                    any = true;
                    if (!is_number_text(r[c])) right[c] = false;
                }
            }
            if (!any) right[c] = false;
        }
        right[0] = false;
        // Column groups that fit the width, each led by column 0.
        std::vector<std::vector<std::size_t>> groups;
        if (n == 1) groups.push_back({0});
        std::size_t used = 0;
        for (std::size_t c = 1; c < n; ++c) {
            if (groups.empty() || used + 2 + width[c] > kTableWidth) {
                groups.push_back({0});
                used = indent.size() + width[0];
            }
            groups.back().push_back(c);
            used += 2 + width[c];
        }
        for (std::size_t g = 0; g < groups.size(); ++g) {
            if (g > 0) os << "\n";
            auto line = [&](const std::vector<std::string>& r) {
                std::string s = indent;
                for (std::size_t i = 0; i < groups[g].size(); ++i) {
                    const std::size_t c = groups[g][i];
                    if (i > 0) s += "  ";
                    const std::string pad(width[c] - r[c].size(), ' ');
                    s += right[c] ? pad + r[c] : r[c] + pad;
                }
                while (!s.empty() && s.back() == ' ') s.pop_back();
                os << s << "\n";
            };
            if (show_header) line(header);
            for (const auto& r : rows) line(r);
        }
    }
};

// Rows of objects -> a table whose columns are `first` (those present) then, unless
// `only_first`, every other key in order of appearance; `skip` keys are left out.
Table table_of(const Json& objects, const std::vector<std::string>& first, const std::set<std::string>& skip = {},
               bool only_first = false) {
    std::vector<std::string> columns;
    auto add_column = [&](const std::string& k) {
        if (!skip.count(k) && std::find(columns.begin(), columns.end(), k) == columns.end()) columns.push_back(k);
    };
    for (const std::string& k : first)
        for (const Json& o : objects)
            if (o.is_object() && o.contains(k)) {
                add_column(k);
                break;
            }
    if (!only_first)
        for (const Json& o : objects)
            if (o.is_object())
                for (const auto& [k, v] : o.items()) add_column(k);
    Table t;
    t.header = columns;
    for (const Json& o : objects) {
        std::vector<std::string> row;
        for (const std::string& c : columns) row.push_back(o.is_object() && o.contains(c) ? cell(o[c]) : "");
        t.add(std::move(row));
    }
    return t;
}

// "name value" pairs of an object of scalars; zero values left out when `nonzero_only`.
Table pairs_of(const Json& object, const std::string& key_header, const std::string& value_header,
               bool nonzero_only) {
    Table t;
    t.header = {key_header, value_header};
    for (const auto& [k, v] : object.items())
        if (!nonzero_only || !is_zero(v)) t.add({k, cell(v)});
    return t;
}

void section(std::ostream& os, const std::string& title) { os << "\n" << title << "\n"; }

// 198.19.0.10, 198.19.0.11, 198.19.0.12 -> "198.19.0.10-198.19.0.12": pools can hold 65536.
std::string address_ranges(const Json& list) {
    if (!list.is_array() || list.empty()) return "-";
    std::vector<std::pair<uint32_t, uint32_t>> runs;
    std::vector<std::string> others;
    for (const Json& a : list) {
        in_addr parsed{};
        if (!a.is_string() || ::inet_pton(AF_INET, a.get<std::string>().c_str(), &parsed) != 1) {
            others.push_back(cell(a));
            continue;
        }
        const uint32_t v = ntohl(parsed.s_addr);
        if (!runs.empty() && runs.back().second != 0xffffffff && runs.back().second + 1 == v)
            runs.back().second = v;
        else
            runs.emplace_back(v, v);
    }
    auto text = [](uint32_t v) {
        in_addr a{htonl(v)};
        char buf[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
        return std::string(buf);
    };
    std::string out;
    // (Appends one piece at a time: GCC 12's -Wrestrict misfires on "-" + string at -O3.)
    for (const auto& [lo, hi] : runs) {
        if (!out.empty()) out += ", ";
        out += text(lo);
        if (hi != lo) {
            out += '-';
            out += text(hi);
        }
    }
    for (const std::string& o : others) out += (out.empty() ? "" : ", ") + o;
    return out;
}

std::string key_values(const Json& object) {
    if (!object.is_object() || object.empty()) return "-";
    std::string out;
    for (const auto& [k, v] : object.items()) out += (out.empty() ? "" : " ") + k + "=" + cell(v);
    return out;
}

void print_stats(const Json& r, std::ostream& os) {
    // Header line: scalar top-level values and the steering strategies.
    std::string head;
    for (const auto& [k, v] : r.items()) {
        if (v.is_object() || v.is_array()) continue;
        head += (head.empty() ? "" : "   ") + (k == "uptime_s" ? "uptime " + cell(v) + " s" : k + " " + cell(v));
    }
    if (r.contains("steering") && r["steering"].is_object())
        head += (head.empty() ? "" : "   ") + std::string("steering ") + key_values(r["steering"]);
    if (!head.empty()) os << head << "\n";

    if (r.contains("workers") && r["workers"].is_array()) {
        Json rows = r["workers"];
        if (r.contains("total") && r["total"].is_object()) {
            Json total = r["total"];
            total["worker"] = "total";
            rows.push_back(total);
        }
        const std::vector<std::string> main = {"worker", "rx_inside", "rx_outside", "tx_inside", "tx_outside",
                                               "new", "translated", "handoffs", "drops", "sessions"};
        section(os, "per worker");
        table_of(rows, main, {}, true).print(os);
        // The remaining counters (whatever the daemon adds), in a second table.
        std::set<std::string> shown(main.begin(), main.end());
        shown.erase("worker");
        Table more = table_of(rows, {"worker"}, shown);
        if (more.header.size() > 1) {
            os << "\n";
            more.print(os);
        }
    }

    std::set<std::string> done = {"workers", "total", "steering"};
    if (r.contains("drops") && r["drops"].is_object()) {
        done.insert("drops");
        const Table t = pairs_of(r["drops"], "drop reason", "packets", true);
        section(os, "drops");
        if (t.rows.empty()) os << "  none\n";
        else t.print(os, "  ");
    }
    if (r.contains("sessions_by_state") && r["sessions_by_state"].is_object()) {
        done.insert("sessions_by_state");
        Table t;
        t.header = {"state", "sessions"};
        for (const auto& [proto, v] : r["sessions_by_state"].items()) {
            if (v.is_object()) {
                for (const auto& [state, n] : v.items())
                    if (!is_zero(n)) t.add({proto + " " + state, cell(n)});
            } else if (!is_zero(v)) {
                t.add({proto, cell(v)});
            }
        }
        section(os, "sessions by state");
        if (t.rows.empty()) os << "  none\n";
        else t.print(os, "  ");
    }
    if (r.contains("ports_in_use") && r["ports_in_use"].is_array()) {
        done.insert("ports_in_use");
        section(os, "ports in use");
        if (r["ports_in_use"].empty()) os << "  no pool addresses\n";
        else
            table_of(r["ports_in_use"], {"pool", "address", "tcp", "udp", "icmp", "per_protocol_capacity"})
                .print(os, "  ");
    }
    if (r.contains("ports") && r["ports"].is_object()) {
        done.insert("ports");
        Json rows = Json::array();
        for (const auto& [side, counters] : r["ports"].items()) {
            Json row = Json{{"port", side}};
            if (counters.is_object())
                for (const auto& [k, v] : counters.items()) row[k] = v;
            rows.push_back(row);
        }
        section(os, "ports");
        table_of(rows, {"port"}).print(os, "  ");
    }
    // Loop pass times (a histogram per worker): the buckets that counted a pass.
    if (r.contains("loop_pass_time") && r["loop_pass_time"].is_object()) {
        done.insert("loop_pass_time");
        const Json& h = r["loop_pass_time"];
        const Json bounds = h.value("bounds_us", Json::array());
        const Json total = h.value("total", Json::array());
        const Json workers = h.value("workers", Json::array());
        Table t;
        t.header = {"pass time", "total"};
        for (std::size_t w = 0; w < workers.size(); ++w) t.header.push_back("worker " + std::to_string(w));
        for (std::size_t k = 0; k < total.size(); ++k) {
            if (is_zero(total[k])) continue;
            std::string label = k < bounds.size() ? "< " + cell(bounds[k]) + " us"
                                : bounds.empty()  ? "-"
                                                  : ">= " + cell(bounds.back()) + " us";
            std::vector<std::string> row = {label, cell(total[k])};
            for (const Json& w : workers) row.push_back(w.is_array() && k < w.size() ? cell(w[k]) : "-");
            t.add(row);
        }
        section(os, "loop pass times");
        if (t.rows.empty()) os << "  none\n";
        else t.print(os, "  ");
    }
    // Everything else (loop, control, events, and what comes later): non-zero counters.
    for (const auto& [k, v] : r.items()) {
        if (done.count(k) || !v.is_object()) continue;
        const Table t = pairs_of(v, "counter", "value", true);
        section(os, k);
        if (t.rows.empty()) os << "  all zero\n";
        else t.print(os, "  ");
    }
}

// ports_in_use of a pool: {"<addr>": {"tcp": [per worker], ...}} -> one row per address with
// the sum and, for several workers, the split.
void print_ports_in_use(const Json& use, std::ostream& os, const std::string& indent) {
    Json rows = Json::array();
    for (const auto& [addr, protos] : use.items()) {
        Json row = Json{{"address", addr}};
        if (protos.is_object())
            for (const auto& [proto, v] : protos.items()) {
                if (!v.is_array()) {
                    row[proto] = cell(v);
                    continue;
                }
                uint64_t sum = 0;
                std::string split;
                for (const Json& n : v) {
                    sum += n.is_number_unsigned() || n.is_number_integer() ? n.get<uint64_t>() : 0;
                    if (!split.empty()) split += '+';
                    split += cell(n);
                }
                std::string text = std::to_string(sum);
                if (v.size() > 1) {
                    text += " (";
                    text += split;
                    text += ')';
                }
                row[proto] = text;
            }
        rows.push_back(row);
    }
    table_of(rows, {"address", "tcp", "udp", "icmp"}).print(os, indent);
}

void print_pool(const Json& p, std::ostream& os) {
    os << "pool " << p.value("name", std::string("?")) << "\n";
    Table t;
    t.header = {"", ""};
    t.show_header = false;
    std::set<std::string> done = {"name", "ports_in_use"};
    auto row = [&](const std::string& key, const std::string& label, const std::string& value) {
        if (!p.contains(key)) return;
        done.insert(key);
        t.add({label, value});
    };
    row("addresses", "addresses", address_ranges(p.value("addresses", Json::array())));
    row("draining", "draining", address_ranges(p.value("draining", Json::array())));
    row("ports", "ports", cell(p.value("ports", Json())));
    row("policy", "policy", cell(p.value("policy", Json())));
    row("timeouts", "timeouts (s)", key_values(p.value("timeouts", Json::object())));
    if (p.contains("max_sessions_per_host")) {
        const Json& m = p["max_sessions_per_host"];
        row("max_sessions_per_host", "max sessions/host", is_zero(m) ? "no limit" : cell(m));
    }
    if (p.contains("max_embryonic_per_host")) {
        const Json& m = p["max_embryonic_per_host"];
        row("max_embryonic_per_host", "max handshakes/host", is_zero(m) ? "no limit" : cell(m));
    }
    row("rules", "rules", cell(p.value("rules", Json::array())));
    for (const auto& [k, v] : p.items())
        if (!done.count(k)) t.add({k, cell(v)});
    t.print(os, "  ");
    if (p.contains("ports_in_use") && p["ports_in_use"].is_object() && !p["ports_in_use"].empty()) {
        os << "  ports in use\n";
        print_ports_in_use(p["ports_in_use"], os, "    ");
    }
}

void print_sessions(const Json& r, std::ostream& os, uint64_t offset) {
    const Json sessions = r.value("sessions", Json::array());
    if (!sessions.empty())
        table_of(sessions, {"worker", "proto", "state", "inside", "outside", "remote", "pool", "idle_ms"}).print(os);
    const std::string total = r.contains("total") ? cell(r["total"]) : "?";
    if (sessions.empty())
        os << "no sessions shown, " << total << " in all" << (offset ? " (offset " + std::to_string(offset) + ")" : "")
           << "\n";
    else
        os << sessions.size() << " of " << total << (offset ? " (from " + std::to_string(offset) + ")" : "") << "\n";
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

struct Global {
    std::string socket = kDefaultSocket;
    double timeout = 5;
    bool json = false;
    bool help = false;
};

// One command: its words, what it sends, how its result is printed.
struct Command {
    std::string words;        // "pool add"
    std::string synopsis;     // "NAME --addresses A [...]"
    std::string about;
    po::options_description options;
    po::positional_options_description positional;
    std::string own_help;     // the options of this command alone, for the full help
};

po::options_description common_options() {
    po::options_description o("Also accepted after any command");
    o.add_options()("json", "print the raw result as JSON")("help,h", "this command's help");
    return o;
}

po::options_description filter_options() {
    po::options_description o("Session filters (all optional, AND-ed)");
    o.add_options()
        ("inside", po::value<std::string>()->value_name("E"), "inside endpoint: ADDRESS or ADDRESS:PORT")
        ("outside", po::value<std::string>()->value_name("E"), "outside (public) endpoint: ADDRESS or ADDRESS:PORT")
        ("remote", po::value<std::string>()->value_name("E"), "remote endpoint: ADDRESS or ADDRESS:PORT")
        ("proto", po::value<std::string>()->value_name("P"), "tcp | udp | icmp")
        ("state", po::value<std::string>()->value_name("S"),
         "syn_sent syn_recv established fin_wait close_wait last_ack time_wait closed expired (TCP) | udp | icmp")
        ("worker", po::value<int64_t>()->value_name("N"), "worker number (0..63)")
        ("pool", po::value<std::string>()->value_name("NAME"), "pool name");
    return o;
}

std::string text_of(const po::options_description& o) {
    std::ostringstream os;
    os << o;
    return os.str();
}

std::vector<Command> commands() {
    std::vector<Command> out;
    auto add = [&](std::string words, std::string synopsis, std::string about) -> Command& {
        out.push_back(Command{std::move(words), std::move(synopsis), std::move(about),
                              po::options_description(), po::positional_options_description(), ""});
        return out.back();
    };
    add("version", "", "the daemon's name, version and control protocol version");
    add("stats", "", "counters per worker and in total, drops by reason, sessions by state, port use, "
                     "port and loop counters");
    add("pools", "", "every pool: addresses (and draining ones), ports, policy, timeouts, rules, ports in use");
    {
        Command& c = add("sessions", "[FILTERS] [--offset N] [--limit N] [--count]",
                         "list sessions (100 by default, 10000 at most per request) or only count them");
        po::options_description o("sessions options");
        o.add_options()("offset", po::value<int64_t>()->value_name("N"), "skip the first N matching sessions")
            ("limit", po::value<int64_t>()->value_name("N"), "show at most N sessions (1..10000, default 100)")
            ("count", "print only the number of matching sessions");
        c.options.add(filter_options()).add(o);
        c.own_help = text_of(o);
    }
    {
        Command& c = add("sessions flush", "(FILTERS | --all)",
                         "remove the matching sessions (at least one filter, or --all)");
        po::options_description o("sessions flush options");
        o.add_options()("all", "every session");
        c.options.add(filter_options()).add(o);
        c.own_help = text_of(o);
    }
    {
        Command& c = add("pool add", "NAME --addresses A [--ports R] [--policy P] [--rule PREFIX]... "
                                     "[--timeout NAME=SEC]... [--max-sessions-per-host N]",
                         "add a pool (repeating an identical add is fine; a different pool of the same "
                         "name is a conflict)");
        po::options_description o("pool add options");
        o.add_options()("name", po::value<std::string>()->value_name("NAME"), "pool name, [A-Za-z0-9_-]{1,32}")
            ("addresses", po::value<std::string>()->value_name("A"),
             "public addresses, ranges and prefixes: 198.19.0.10-198.19.0.13,198.19.1.0/30")
            ("ports", po::value<std::string>()->value_name("R"), "port range, default 1024-65535")
            ("policy", po::value<std::string>()->value_name("P"),
             "out-of-window policy: liberal (default) | strict | retrans-ok")
            ("rule", po::value<std::vector<std::string>>()->value_name("PREFIX"),
             "inside source prefix translated with this pool (repeatable)")
            ("timeout", po::value<std::vector<std::string>>()->value_name("NAME=SEC"),
             "NAME=SEC, NAME one of tcp_established tcp_transitory tcp_syn_sent tcp_syn_recv udp icmp quarantine linger (repeatable)")
            ("max-sessions-per-host", po::value<int64_t>()->value_name("N"), "sessions per inside host, 0 = no limit")
            ("max-embryonic-per-host", po::value<int64_t>()->value_name("N"),
             "TCP handshakes per inside host and worker (beyond: its oldest is recycled), 0 = no limit");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("name", 1);
    }
    {
        Command& c = add("pool del", "NAME", "remove a pool; its sessions drain");
        po::options_description o("pool del options");
        o.add_options()("name", po::value<std::string>()->value_name("NAME"), "pool name");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("name", 1);
    }
    {
        Command& c = add("pool set", "NAME [--add A] [--del A] [--ports R] [--rule PREFIX]... [--no-rules] "
                                     "[--max-sessions-per-host N]",
                         "change a pool: add or remove (drain) addresses, change ports, replace its rules");
        po::options_description o("pool set options");
        o.add_options()("name", po::value<std::string>()->value_name("NAME"), "pool name")
            ("add", po::value<std::string>()->value_name("A"), "addresses to add (pool syntax)")
            ("del", po::value<std::string>()->value_name("A"), "addresses to remove; their sessions drain")
            ("ports", po::value<std::string>()->value_name("R"), "new port range")
            ("rule", po::value<std::vector<std::string>>()->value_name("PREFIX"),
             "the pool's rules become these prefixes (repeatable)")
            ("no-rules", "remove every rule of the pool")
            ("max-sessions-per-host", po::value<int64_t>()->value_name("N"), "sessions per inside host, 0 = no limit")
            ("max-embryonic-per-host", po::value<int64_t>()->value_name("N"),
             "TCP handshakes per inside host and worker (beyond: its oldest is recycled), 0 = no limit");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("name", 1);
    }
    {
        Command& c = add("policy set", "POOL POLICY",
                         "set a pool's out-of-window policy: liberal | strict | retrans-ok");
        po::options_description o("policy set arguments");
        o.add_options()("pool", po::value<std::string>()->value_name("NAME"), "pool name")
            ("policy", po::value<std::string>()->value_name("P"), "policy");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("pool", 1).add("policy", 1);
    }
    {
        Command& c = add("timeouts set", "POOL NAME=SEC...",
                         "set timeouts of a pool (seconds): tcp_established tcp_transitory tcp_syn_sent tcp_syn_recv udp icmp linger "
                         "(1..604800), quarantine (0..604800)");
        po::options_description o("timeouts set arguments");
        o.add_options()("pool", po::value<std::string>()->value_name("NAME"), "pool name")
            ("set", po::value<std::vector<std::string>>()->value_name("NAME=SEC"), "NAME=SEC");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("pool", 1).add("set", -1);
    }
    {
        Command& c = add("log level", "LEVEL", "set the log level: trace debug info warn error critical off");
        po::options_description o("log level arguments");
        o.add_options()("level", po::value<std::string>()->value_name("LEVEL"), "level");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("level", 1);
    }
    {
        Command& c = add("save", "[PATH]",
                         "write the running configuration to PATH (made absolute here), by default to the "
                         "file the daemon read");
        po::options_description o("save arguments");
        o.add_options()("path", po::value<std::string>()->value_name("PATH"), "file to write");
        c.options.add(o);
        c.own_help = text_of(o);
        c.positional.add("path", 1);
    }
    for (Command& c : out) c.options.add(common_options());
    return out;
}

po::options_description global_options() {
    po::options_description o("Options (before the command)");
    o.add_options()("socket", po::value<std::string>()->value_name("PATH")->default_value(kDefaultSocket),
                    "control socket")
        ("json", "print the raw result as JSON (pretty)")
        ("timeout", po::value<double>()->value_name("SEC")->default_value(5),
         "seconds to wait for the connection and the answer")
        ("help,h", "this help");
    return o;
}

std::string command_help(const Command& c) {
    std::ostringstream os;
    os << "Usage: snatctl [options] " << c.words << (c.synopsis.empty() ? "" : " " + c.synopsis) << "\n  "
       << c.about << "\n";
    // Positional arguments appear as options too; the synopsis names them.
    os << c.options;
    return os.str();
}

std::string full_help(const std::vector<Command>& cmds) {
    std::ostringstream os;
    os << "Usage: snatctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n\n"
          "Talks to the snatgw daemon over its control socket (newline-delimited JSON, API v1).\n\n"
       << global_options() << "\nCommands:\n";
    for (const Command& c : cmds)
        os << "  " << c.words << (c.synopsis.empty() ? "" : " " + c.synopsis) << "\n      " << c.about << "\n";
    os << "\n" << filter_options() << "\n";
    for (const Command& c : cmds)
        if (c.words == "sessions" || c.words == "sessions flush" || c.words == "pool add" || c.words == "pool set")
            os << c.own_help << "\n";  // filters and common options are shown once
    os << "Values use the configuration file's syntax (docs/configuration.md): address 198.19.0.10,\n"
          "endpoint 198.19.0.10 or 198.19.0.10:8080, prefix 198.18.0.0/24, addresses\n"
          "'198.19.0.10-198.19.0.13,198.19.0.20,198.19.1.0/30', ports 1024-65535, pool names\n"
          "[A-Za-z0-9_-]{1,32}. The daemon checks them and names the field it rejects.\n\n"
          "Output: aligned tables; --json prints the daemon's result object unchanged.\n"
          "Errors go to stderr as 'snatctl: CODE: MESSAGE'.\n\n"
          "Exit status: 0 ok, 1 the daemon answered with an error, 2 usage error,\n"
          "3 cannot connect, or no answer within --timeout.\n";
    return os.str();
}

// Splits argv into the global part and the command part (the first word not an option or an
// option's value). Global options must come before the command, whose options may reuse names.
std::pair<std::vector<std::string>, std::vector<std::string>> split_argv(int argc, char** argv) {
    std::vector<std::string> global, rest;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.empty() || a[0] != '-' || a == "-") break;
        global.push_back(a);
        if ((a == "--socket" || a == "--timeout") && i + 1 < argc) global.push_back(argv[++i]);
    }
    for (; i < argc; ++i) rest.emplace_back(argv[i]);
    return {global, rest};
}

std::optional<std::string> opt_string(const po::variables_map& vm, const char* name) {
    if (!vm.count(name)) return std::nullopt;
    return vm[name].as<std::string>();
}

uint32_t parse_seconds(const std::string& text, const std::string& what) {
    uint64_t v = 0;
    if (text.empty() || text.size() > 10 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw UsageError(what + ": '" + text + "' is not a number of seconds");
    v = std::stoull(text);
    if (v > 0xffffffffu) throw UsageError(what + ": '" + text + "' is too large");
    return static_cast<uint32_t>(v);
}

Json timeouts_of(const std::vector<std::string>& items) {
    Json t = Json::object();
    for (const std::string& item : items) {
        const std::size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0) throw UsageError("timeout '" + item + "' must be NAME=SEC");
        t[item.substr(0, eq)] = parse_seconds(item.substr(eq + 1), "timeout " + item.substr(0, eq));
    }
    return t;
}

void add_filters(const po::variables_map& vm, Json& args) {
    for (const char* k : {"inside", "outside", "remote", "proto", "state", "pool"})
        if (auto v = opt_string(vm, k)) args[k] = *v;
    if (vm.count("worker")) args["worker"] = vm["worker"].as<int64_t>();
}

// The request for a command line (words already matched), from its parsed options.
Json build_args(const std::string& words, const po::variables_map& vm) {
    Json args = Json::object();
    if (words == "sessions") {
        add_filters(vm, args);
        if (vm.count("offset")) args["offset"] = vm["offset"].as<int64_t>();
        if (vm.count("limit")) args["limit"] = vm["limit"].as<int64_t>();
        if (vm.count("count")) args["count_only"] = true;
    } else if (words == "sessions flush") {
        add_filters(vm, args);
        if (vm.count("all")) args["all"] = true;
        if (args.empty()) throw UsageError("sessions flush needs a filter or --all");
    } else if (words == "pool add") {
        const auto name = opt_string(vm, "name");
        const auto addresses = opt_string(vm, "addresses");
        if (!name) throw UsageError("pool add needs a NAME");
        if (!addresses) throw UsageError("pool add needs --addresses");
        args["name"] = *name;
        args["addresses"] = *addresses;
        if (auto v = opt_string(vm, "ports")) args["ports"] = *v;
        if (auto v = opt_string(vm, "policy")) args["policy"] = *v;
        if (vm.count("timeout")) args["timeouts"] = timeouts_of(vm["timeout"].as<std::vector<std::string>>());
        if (vm.count("max-sessions-per-host")) args["max_sessions_per_host"] = vm["max-sessions-per-host"].as<int64_t>();
        if (vm.count("max-embryonic-per-host")) args["max_embryonic_per_host"] = vm["max-embryonic-per-host"].as<int64_t>();
        if (vm.count("rule")) args["rules"] = vm["rule"].as<std::vector<std::string>>();
    } else if (words == "pool del") {
        const auto name = opt_string(vm, "name");
        if (!name) throw UsageError("pool del needs a NAME");
        args["name"] = *name;
    } else if (words == "pool set") {
        const auto name = opt_string(vm, "name");
        if (!name) throw UsageError("pool set needs a NAME");
        args["name"] = *name;
        if (auto v = opt_string(vm, "add")) args["add_addresses"] = *v;
        if (auto v = opt_string(vm, "del")) args["del_addresses"] = *v;
        if (auto v = opt_string(vm, "ports")) args["ports"] = *v;
        if (vm.count("max-sessions-per-host")) args["max_sessions_per_host"] = vm["max-sessions-per-host"].as<int64_t>();
        if (vm.count("max-embryonic-per-host")) args["max_embryonic_per_host"] = vm["max-embryonic-per-host"].as<int64_t>();
        if (vm.count("rule") && vm.count("no-rules")) throw UsageError("--rule and --no-rules exclude each other");
        if (vm.count("rule")) args["rules"] = vm["rule"].as<std::vector<std::string>>();
        if (vm.count("no-rules")) args["rules"] = Json::array();
        if (args.size() == 1) throw UsageError("pool set needs something to change");
    } else if (words == "policy set") {
        const auto pool = opt_string(vm, "pool");
        const auto policy = opt_string(vm, "policy");
        if (!pool || !policy) throw UsageError("policy set needs POOL and POLICY");
        args["pool"] = *pool;
        args["policy"] = *policy;
    } else if (words == "timeouts set") {
        const auto pool = opt_string(vm, "pool");
        if (!pool || !vm.count("set")) throw UsageError("timeouts set needs POOL and at least one NAME=SEC");
        args["pool"] = *pool;
        args["timeouts"] = timeouts_of(vm["set"].as<std::vector<std::string>>());
    } else if (words == "log level") {
        const auto level = opt_string(vm, "level");
        if (!level) throw UsageError("log level needs a LEVEL");
        args["level"] = *level;
    } else if (words == "save") {
        if (auto path = opt_string(vm, "path")) args["path"] = std::filesystem::absolute(*path).lexically_normal().string();
    }
    return args;
}

std::string api_command(const std::string& words) {
    std::string c = words;
    std::replace(c.begin(), c.end(), ' ', '.');
    return c;
}

void print_result(const std::string& words, const Json& args, const Json& r, std::ostream& os) {
    auto has = [&](std::initializer_list<const char*> keys) {
        return r.is_object() && std::all_of(keys.begin(), keys.end(), [&](const char* k) { return r.contains(k); });
    };
    if (words == "version" && has({"daemon", "version"})) {
        os << cell(r["daemon"]) << " " << cell(r["version"])
           << (r.contains("protocol") ? " (control protocol " + cell(r["protocol"]) + ")" : "") << "\n";
    } else if (words == "stats" && r.is_object()) {
        print_stats(r, os);
    } else if (words == "pools" && has({"pools"}) && r["pools"].is_array()) {
        if (r["pools"].empty()) os << "no pools\n";
        for (std::size_t i = 0; i < r["pools"].size(); ++i) {
            if (i > 0) os << "\n";
            print_pool(r["pools"][i], os);
        }
    } else if (words == "sessions" && args.value("count_only", false) && has({"total"})) {
        os << cell(r["total"]) << "\n";
    } else if (words == "sessions" && has({"total"})) {
        print_sessions(r, os, args.value("offset", uint64_t{0}));
    } else if (words == "sessions flush" && has({"flushed"})) {
        os << "flushed " << cell(r["flushed"]) << " sessions\n";
    } else if ((words == "pool add" || words == "pool set") && has({"pool"}) && r["pool"].is_object()) {
        print_pool(r["pool"], os);
    } else if (words == "pool del" && has({"removed"})) {
        os << "removed pool " << cell(r["removed"]);
        if (r.contains("draining_sessions")) os << "; " << cell(r["draining_sessions"]) << " sessions draining";
        os << "\n";
    } else if (words == "policy set" && has({"pool", "policy"})) {
        os << "pool " << cell(r["pool"]) << ": policy " << cell(r["policy"]) << "\n";
    } else if (words == "timeouts set" && has({"pool", "timeouts"})) {
        os << "pool " << cell(r["pool"]) << ": timeouts (s) " << key_values(r["timeouts"]) << "\n";
    } else if (words == "log level" && has({"level"})) {
        os << "log level " << cell(r["level"]) << "\n";
    } else if (words == "save" && has({"path"})) {
        os << "saved " << cell(r["path"]) << "\n";
    } else {
        os << r.dump(2) << "\n";  // a result of a shape this snatctl does not know
    }
}

int run(int argc, char** argv) {
    const std::vector<Command> cmds = commands();
    auto [global_args, rest] = split_argv(argc, argv);

    Global g;
    {
        po::variables_map vm;
        po::store(po::command_line_parser(global_args).options(global_options()).run(), vm);
        po::notify(vm);
        g.socket = vm["socket"].as<std::string>();
        g.timeout = vm["timeout"].as<double>();
        g.json = vm.count("json") > 0;
        g.help = vm.count("help") > 0;
        if (!(g.timeout > 0 && g.timeout <= 3600))
            throw UsageError("--timeout must be more than 0 and at most 3600 seconds");
    }
    if (g.help) {
        std::cout << full_help(cmds);
        return kExitOk;
    }
    if (rest.empty()) {
        std::cerr << full_help(cmds);
        return kExitUsage;
    }

    // The longest command whose words start the rest: "sessions flush" before "sessions".
    const Command* cmd = nullptr;
    std::size_t nwords = 0;
    for (const Command& c : cmds) {
        std::istringstream words(c.words);
        std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
        if (w.size() <= rest.size() && std::equal(w.begin(), w.end(), rest.begin()) && w.size() > nwords) {
            cmd = &c;
            nwords = w.size();
        }
    }
    if (!cmd) {
        // "pool frob": name the pool commands; "frob": name the first words.
        std::string same_first, firsts;
        std::set<std::string> seen;
        for (const Command& c : cmds) {
            const std::string first = c.words.substr(0, c.words.find(' '));
            if (first == rest[0]) same_first += (same_first.empty() ? "" : ", ") + c.words;
            if (seen.insert(first).second) firsts += (firsts.empty() ? "" : ", ") + first;
        }
        if (!same_first.empty())
            throw UsageError("'" + rest[0] + "' needs a subcommand: " + same_first);
        throw UsageError("unknown command '" + rest[0] + "' (commands: " + firsts + ")");
    }
    const std::vector<std::string> cmd_args(rest.begin() + static_cast<std::ptrdiff_t>(nwords), rest.end());

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(cmd_args).options(cmd->options).positional(cmd->positional).run(), vm);
    } catch (const po::too_many_positional_options_error&) {
        throw UsageError("too many arguments for '" + cmd->words + "' (usage: snatctl " + cmd->words +
                         (cmd->synopsis.empty() ? "" : " " + cmd->synopsis) + ")");
    }
    po::notify(vm);
    if (vm.count("help")) {
        std::cout << command_help(*cmd);
        return kExitOk;
    }
    const bool json_out = g.json || vm.count("json") > 0;

    const Json args = build_args(cmd->words, vm);
    const Json request = {{"version", 1}, {"command", api_command(cmd->words)}, {"args", args}};
    const Json result = call(g.socket, g.timeout, request);
    if (json_out) std::cout << result.dump(2) << "\n";
    else print_result(cmd->words, args, result, std::cout);
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const ReplyError& e) {
        std::cerr << "snatctl: " << e.code << ": " << e.what() << "\n";
        return kExitReplyError;
    } catch (const ConnectionError& e) {
        std::cerr << "snatctl: " << e.what() << "\n";
        return kExitConnection;
    } catch (const UsageError& e) {
        std::cerr << "snatctl: " << e.what() << "\nTry 'snatctl --help'.\n";
        return kExitUsage;
    } catch (const po::error& e) {
        std::cerr << "snatctl: " << e.what() << "\nTry 'snatctl --help'.\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "snatctl: " << e.what() << "\n";
        return kExitReplyError;
    }
}
