// race_client: the client side of the SNAT port-race lab (what people run to reproduce the
// "1 s / 3 s connect" failure of a Linux SNAT box). N threads connect concurrently to one
// address:port, each connection with a connect timeout, then close at once (or, with
// --server-closes, wait for the server to close first). Bounded by --duration and --count.
//
// Every --interval seconds and at the end it prints connects/s, the median, p95, p99 and max
// connect time, errors by class (timeout, refused, reset, unreachable, addrnotavail, other by
// errno name), how many connects took >= 1 s (in all, and counted from the return of the
// connect() call, which excludes the host's own local-port search; that call is timed apart) and how many needed a retransmitted SYN (TCP_INFO
// total_retrans: a lost SYN or SYN-ACK, the race's signature, as opposed to a slow scheduler).
// --json prints the final report as one JSON object on stdout (interval lines go to stderr).
// --start-at T holds every thread until the wall-clock time T, so that several processes (one
// per inside host) send their first SYNs together: a cold-start burst.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop.store(true); }

using Clock = std::chrono::steady_clock;

struct Options {
    std::string target;  // ip:port
    int threads = 16;
    std::vector<std::string> bind_from;
    double connect_timeout_s = 3.0;
    double duration_s = 10.0;
    uint64_t count = 0;
    bool server_closes = false;
    double close_wait_s = 5.0;
    unsigned hold_ms = 0;
    unsigned pause_ms = 0;
    bool linger0 = false;
    double interval_s = 5.0;
    bool json = false;
    double start_at = 0;  // wall-clock moment (Unix seconds) of every thread's first connect; 0: now
};

// Outcome classes of one connect.
enum class Outcome { Ok, Timeout, Refused, Reset, Unreachable, AddrNotAvail, Other };

const char* outcome_name(Outcome o) {
    switch (o) {
    case Outcome::Ok: return "ok";
    case Outcome::Timeout: return "timeout";
    case Outcome::Refused: return "refused";
    case Outcome::Reset: return "reset";
    case Outcome::Unreachable: return "unreachable";
    case Outcome::AddrNotAvail: return "addrnotavail";
    case Outcome::Other: return "other";
    }
    return "other";
}

Outcome classify(int err) {
    switch (err) {
    case 0: return Outcome::Ok;
    case ETIMEDOUT: return Outcome::Timeout;
    case ECONNREFUSED: return Outcome::Refused;
    case ECONNRESET: return Outcome::Reset;
    case EHOSTUNREACH:
    case ENETUNREACH: return Outcome::Unreachable;
    case EADDRNOTAVAIL: return Outcome::AddrNotAvail;
    default: return Outcome::Other;
    }
}

// At most this many start times of slow connects are kept (for --json: when did they happen).
constexpr std::size_t kMaxSlowAt = 1000;

// What one thread collected since the reporter last took it. Guarded by `mutex` (control-tool
// code: one uncontended lock per connect is nothing next to a TCP handshake).
struct Bucket {
    std::vector<uint32_t> ok_us;             // connect times of successful connects
    std::vector<uint32_t> call_us;           // time spent in the connect() call itself
    std::map<std::string, uint64_t> errors;  // class -> count
    std::map<std::string, uint64_t> errnos;  // errno name -> count, for "other"
    uint64_t attempts = 0;
    uint64_t slow = 0;                       // successful connects that took >= 1 s
    uint64_t slow_net = 0;                   // ... >= 1 s after the connect() call returned
    std::vector<double> slow_at;             // when (s since start) each slow connect began
    uint64_t syn_retrans = 0;                // successful connects whose SYN was retransmitted
    uint64_t close_wait_timeouts = 0;        // --server-closes: server did not close in time
    uint32_t max_us = 0;                     // over every attempt, failed ones included

    void merge(const Bucket& b) {
        ok_us.insert(ok_us.end(), b.ok_us.begin(), b.ok_us.end());
        call_us.insert(call_us.end(), b.call_us.begin(), b.call_us.end());
        for (auto& [k, v] : b.errors) errors[k] += v;
        for (auto& [k, v] : b.errnos) errnos[k] += v;
        attempts += b.attempts;
        slow += b.slow;
        slow_net += b.slow_net;
        if (slow_at.size() < kMaxSlowAt)
            slow_at.insert(slow_at.end(), b.slow_at.begin(),
                           b.slow_at.begin() + static_cast<long>(std::min(b.slow_at.size(), kMaxSlowAt - slow_at.size())));
        syn_retrans += b.syn_retrans;
        close_wait_timeouts += b.close_wait_timeouts;
        max_us = std::max(max_us, b.max_us);
    }
};

struct ThreadState {
    std::mutex mutex;
    Bucket bucket;
};

struct Target {
    sockaddr_in addr{};
};

std::string errno_name(int err) {
    const char* n = strerrorname_np(err);
    return n != nullptr ? n : "errno" + std::to_string(err);
}

// One connect attempt. Returns the errno (0 on success) and the elapsed time.
int connect_once(const Options& o, const sockaddr_in& dst, const sockaddr_in* src,
                 uint32_t& elapsed_us, uint32_t& call_us, bool& retransmitted, Bucket& b) {
    retransmitted = false;
    call_us = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        elapsed_us = 0;
        return errno;
    }
    if (src != nullptr) {
        int one = 1;
        // Choose the port at connect time (4-tuple aware), not at bind time.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, reinterpret_cast<const sockaddr*>(src), sizeof *src) < 0) {
            int e = errno;
            ::close(fd);
            elapsed_us = 0;
            return e;
        }
    }
    // The connect time runs from the connect() call to the handshake's end. The call itself is
    // also timed apart: with tens of thousands of TIME_WAIT sockets toward the same server, the
    // host's own search for a free local port takes milliseconds (seconds under contention), and
    // that is not the network's (or the gateway's) doing. On veth the whole handshake may also
    // complete inside the call.
    auto c0 = Clock::now();
    int err = 0;
    int rc = connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
    auto t0 = Clock::now();
    call_us = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(t0 - c0).count());
    if (rc < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            err = 0;
            pollfd p{fd, POLLOUT, 0};
            auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(o.connect_timeout_s));
            for (;;) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - Clock::now()).count();
                if (left <= 0) {
                    err = ETIMEDOUT;
                    break;
                }
                int r = poll(&p, 1, static_cast<int>(left));
                if (r < 0 && errno == EINTR) continue;
                if (r == 0) {
                    err = ETIMEDOUT;
                    break;
                }
                int soerr = 0;
                socklen_t len = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
                err = soerr;
                break;
            }
        }
    }
    elapsed_us = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c0).count());
    if (err == 0) {
        // Did the handshake need a retransmission (a lost SYN or SYN-ACK)? That, not a slow
        // scheduler, is what a NAT losing a SYN looks like.
        tcp_info ti{};
        socklen_t tlen = sizeof ti;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0) retransmitted = ti.tcpi_total_retrans > 0;
        if (o.hold_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.hold_ms));
        if (o.server_closes) {
            // Wait for the server's FIN (read returns 0) before closing.
            pollfd p{fd, POLLIN, 0};
            int wait_ms = static_cast<int>(o.close_wait_s * 1000);
            auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
            bool closed = false;
            char sink[512];
            while (!closed) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - Clock::now()).count();
                if (left <= 0) break;
                int r = poll(&p, 1, static_cast<int>(left));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                ssize_t n = ::read(fd, sink, sizeof sink);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) closed = true;
            }
            if (!closed) ++b.close_wait_timeouts;
        }
        if (o.linger0) {
            linger l{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
    }
    ::close(fd);
    return err;
}

void run_thread(const Options& o, const Target& t, const sockaddr_in* src, ThreadState& ts,
                std::atomic<uint64_t>& claimed, Clock::time_point start, Clock::time_point end) {
    Bucket local;
    // --start-at: every thread waits for the same moment, so the first connects of all threads
    // (and of every process given the same time) leave together: a burst, not a ramp.
    if (Clock::now() < start) std::this_thread::sleep_until(start);
    while (!g_stop.load(std::memory_order_relaxed)) {
        if (o.duration_s > 0 && Clock::now() >= end) break;
        if (o.count > 0 && claimed.fetch_add(1) >= o.count) break;
        const double began = std::chrono::duration<double>(Clock::now() - start).count();
        uint32_t us = 0, call_us = 0;
        bool retransmitted = false;
        int err = connect_once(o, t.addr, src, us, call_us, retransmitted, local);
        Outcome oc = classify(err);
        {
            std::lock_guard<std::mutex> lock(ts.mutex);
            Bucket& b = ts.bucket;
            ++b.attempts;
            b.max_us = std::max(b.max_us, us);
            b.call_us.push_back(call_us);
            b.close_wait_timeouts += local.close_wait_timeouts;
            local.close_wait_timeouts = 0;
            if (oc == Outcome::Ok) {
                b.ok_us.push_back(us);
                if (us >= 1000000) {
                    ++b.slow;
                    if (b.slow_at.size() < kMaxSlowAt) b.slow_at.push_back(began);
                }
                if (us - call_us >= 1000000) ++b.slow_net;
                if (retransmitted) ++b.syn_retrans;
            } else {
                ++b.errors[outcome_name(oc)];
                if (oc == Outcome::Other) ++b.errnos[errno_name(err)];
            }
        }
        if (oc != Outcome::Ok && oc != Outcome::Timeout) {
            // Immediate failures (refused, no local port) would otherwise spin.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (o.pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
    }
}

double percentile_ms(std::vector<uint32_t>& v, double p) {
    if (v.empty()) return 0.0;
    size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
    return v[idx] / 1000.0;
}

nlohmann::json report(const Bucket& b_in, double seconds) {
    Bucket b = b_in;
    uint64_t ok = b.ok_us.size();
    uint64_t failed = b.attempts - ok;
    nlohmann::json j;
    j["seconds"] = seconds;
    j["attempts"] = b.attempts;
    j["connects_ok"] = ok;
    j["connects_failed"] = failed;
    j["connects_per_s"] = seconds > 0 ? static_cast<double>(ok) / seconds : 0.0;
    j["connect_ms"] = {{"median", percentile_ms(b.ok_us, 0.50)},
                       {"p95", percentile_ms(b.ok_us, 0.95)},
                       {"p99", percentile_ms(b.ok_us, 0.99)},
                       {"max", b.max_us / 1000.0}};
    uint32_t call_max = b.call_us.empty() ? 0 : *std::max_element(b.call_us.begin(), b.call_us.end());
    j["connect_call_ms"] = {{"median", percentile_ms(b.call_us, 0.50)},
                            {"p99", percentile_ms(b.call_us, 0.99)},
                            {"max", call_max / 1000.0}};
    j["slow_1s"] = b.slow;
    j["slow_1s_after_call"] = b.slow_net;
    std::vector<double> at = b.slow_at;
    std::sort(at.begin(), at.end());
    for (double& x : at) x = static_cast<double>(static_cast<int64_t>(x * 1000)) / 1000;
    j["slow_started_at_s"] = at;
    j["syn_retransmitted"] = b.syn_retrans;
    nlohmann::json errs = nlohmann::json::object();
    for (const char* k : {"timeout", "refused", "reset", "unreachable", "addrnotavail", "other"})
        errs[k] = b.errors.count(k) ? b.errors.at(k) : 0;
    j["errors"] = errs;
    j["errors_other"] = b.errnos;
    j["close_wait_timeouts"] = b.close_wait_timeouts;
    return j;
}

std::string report_line(const nlohmann::json& j, const char* label) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s %6.1fs  ok %llu (%.0f/s)  failed %llu  connect ms: median %.2f p95 %.2f "
                  "p99 %.2f max %.1f  >=1s: %llu (%llu after the call)  SYN retransmitted: %llu",
                  label, j["seconds"].get<double>(),
                  static_cast<unsigned long long>(j["connects_ok"].get<uint64_t>()),
                  j["connects_per_s"].get<double>(),
                  static_cast<unsigned long long>(j["connects_failed"].get<uint64_t>()),
                  j["connect_ms"]["median"].get<double>(), j["connect_ms"]["p95"].get<double>(),
                  j["connect_ms"]["p99"].get<double>(), j["connect_ms"]["max"].get<double>(),
                  static_cast<unsigned long long>(j["slow_1s"].get<uint64_t>()),
                  static_cast<unsigned long long>(j["slow_1s_after_call"].get<uint64_t>()),
                  static_cast<unsigned long long>(j["syn_retransmitted"].get<uint64_t>()));
    std::string s = line;
    std::string errs;
    for (auto& [k, v] : j["errors"].items()) {
        if (v.get<uint64_t>() == 0) continue;
        errs += ' ';
        errs += k;
        errs += '=';
        errs += std::to_string(v.get<uint64_t>());
    }
    for (auto& [k, v] : j["errors_other"].items()) {
        errs += ' ';
        errs += k;
        errs += '=';
        errs += std::to_string(v.get<uint64_t>());
    }
    if (!errs.empty()) {
        s += "  errors:";
        s += errs;
    }
    if (j["connect_call_ms"]["p99"].get<double>() >= 1.0) {
        char extra[128];
        std::snprintf(extra, sizeof extra, "  (local connect() call: median %.2f p99 %.2f ms)",
                      j["connect_call_ms"]["median"].get<double>(),
                      j["connect_call_ms"]["p99"].get<double>());
        s += extra;
    }
    if (j["close_wait_timeouts"].get<uint64_t>() > 0) {
        s += "  close-wait timeouts ";
        s += std::to_string(j["close_wait_timeouts"].get<uint64_t>());
    }
    return s;
}

bool parse_addr(const std::string& s, sockaddr_in& out, bool need_port) {
    std::string ip = s;
    uint16_t port = 0;
    auto colon = s.rfind(':');
    if (colon != std::string::npos) {
        ip = s.substr(0, colon);
        try {
            int p = std::stoi(s.substr(colon + 1));
            if (p <= 0 || p > 65535) return false;
            port = static_cast<uint16_t>(p);
        } catch (...) {
            return false;
        }
    } else if (need_port) {
        return false;
    }
    out = {};
    out.sin_family = AF_INET;
    out.sin_port = htons(port);
    return inet_pton(AF_INET, ip.c_str(), &out.sin_addr) == 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    std::string bind_list;
    po::options_description desc(
        "race_client: concurrent connect storm for the SNAT port-race lab\n"
        "usage: race_client --target IP:PORT [options]\nOptions");
    desc.add_options()
        ("help,h", "this help")
        ("target,t", po::value(&o.target), "server IP:PORT")
        ("threads,n", po::value(&o.threads)->default_value(o.threads), "concurrent threads")
        ("bind-from", po::value(&bind_list),
         "comma-separated local source addresses, given to the threads round-robin")
        ("connect-timeout", po::value(&o.connect_timeout_s)->default_value(3.0, "3"),
         "connect timeout, seconds")
        ("duration,d", po::value(&o.duration_s)->default_value(10.0, "10"),
         "stop after this many seconds (0: no time bound, then --count is needed)")
        ("count,c", po::value(&o.count)->default_value(0),
         "stop after this many connect attempts in total (0: no bound)")
        ("server-closes", po::bool_switch(&o.server_closes),
         "wait for the server to close first, then close")
        ("close-wait", po::value(&o.close_wait_s)->default_value(5.0, "5"),
         "with --server-closes: how long to wait for the server's close, seconds")
        ("hold-ms", po::value(&o.hold_ms)->default_value(0),
         "keep each connection open this long before closing")
        ("pause-ms", po::value(&o.pause_ms)->default_value(0),
         "per-thread pause between connects")
        ("rst", po::bool_switch(&o.linger0), "close with a RST (SO_LINGER 0): no TIME_WAIT")
        ("interval", po::value(&o.interval_s)->default_value(5.0, "5"),
         "seconds between progress reports (0: none)")
        ("json", po::bool_switch(&o.json),
         "print the final report as one JSON object on stdout (progress goes to stderr)")
        ("start-at", po::value(&o.start_at)->default_value(0, "now"),
         "start every thread's first connect at this wall-clock time (Unix seconds, e.g. "
         "$(date +%s.%N) + 1), so that several processes burst together; at most 60 s ahead; "
         "--duration counts from then");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "race_client: " << e.what() << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    Target target;
    if (o.target.empty() || !parse_addr(o.target, target.addr, true)) {
        std::cerr << "race_client: --target IP:PORT is required (got '" << o.target << "')\n";
        return 2;
    }
    if (o.threads < 1 || o.threads > 4096) {
        std::cerr << "race_client: --threads must be 1..4096\n";
        return 2;
    }
    if (o.duration_s <= 0 && o.count == 0) {
        std::cerr << "race_client: give --duration or --count (the run must be bounded)\n";
        return 2;
    }
    if (o.connect_timeout_s <= 0) {
        std::cerr << "race_client: --connect-timeout must be > 0\n";
        return 2;
    }
    std::vector<sockaddr_in> sources;
    if (!bind_list.empty()) {
        std::stringstream ss(bind_list);
        std::string item;
        while (std::getline(ss, item, ',')) {
            if (item.empty()) continue;
            sockaddr_in a{};
            if (!parse_addr(item, a, false)) {
                std::cerr << "race_client: bad --bind-from address '" << item << "'\n";
                return 2;
            }
            sources.push_back(a);
        }
    }

    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::ostream& progress = o.json ? std::cerr : std::cout;
    progress << "race_client: " << o.threads << " threads -> " << o.target
             << (o.server_closes ? " (waits for the server to close first)" : " (closes each connection at once)")
             << ", connect timeout " << o.connect_timeout_s << " s" << std::endl;

    auto start = Clock::now();
    if (o.start_at > 0) {
        // The wall-clock moment as a steady-clock one (the wait itself must not jump).
        double ahead = o.start_at - std::chrono::duration<double>(
                                        std::chrono::system_clock::now().time_since_epoch()).count();
        if (ahead > 60) {
            std::cerr << "race_client: --start-at is " << ahead << " s ahead (at most 60)\n";
            return 2;
        }
        if (ahead > 0)
            start += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ahead));
    }
    auto end = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(o.duration_s));
    std::vector<ThreadState> states(static_cast<size_t>(o.threads));
    std::atomic<uint64_t> claimed{0};
    std::atomic<int> running{o.threads};
    std::vector<std::thread> threads;
    for (int i = 0; i < o.threads; ++i) {
        const sockaddr_in* src =
            sources.empty() ? nullptr : &sources[static_cast<size_t>(i) % sources.size()];
        threads.emplace_back([&, src, i] {
            run_thread(o, target, src, states[static_cast<size_t>(i)], claimed, start, end);
            running.fetch_sub(1);
        });
    }

    Bucket total;
    auto collect = [&]() {
        Bucket interval;
        for (auto& s : states) {
            std::lock_guard<std::mutex> lock(s.mutex);
            interval.merge(s.bucket);
            s.bucket = Bucket{};
        }
        return interval;
    };
    auto last = start;
    while (running.load() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        auto now = Clock::now();
        if (o.interval_s > 0 &&
            std::chrono::duration<double>(now - last).count() >= o.interval_s) {
            Bucket iv = collect();
            double secs = std::chrono::duration<double>(now - last).count();
            total.merge(iv);
            progress << report_line(report(iv, secs), "[interval]") << "   (total "
                     << std::chrono::duration<double>(now - start).count() << " s)" << std::endl;
            last = now;
        }
    }
    for (auto& t : threads) t.join();
    total.merge(collect());
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    nlohmann::json final_report = report(total, secs);
    final_report["target"] = o.target;
    final_report["threads"] = o.threads;
    final_report["server_closes"] = o.server_closes;
    final_report["connect_timeout_s"] = o.connect_timeout_s;
    progress << report_line(final_report, "[final]   ") << std::endl;
    if (o.json) std::cout << final_report.dump() << std::endl;
    return 0;
}
