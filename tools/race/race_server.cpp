// race_server: the server side of the SNAT port-race lab. It accepts TCP connections on one
// address:port and closes them: either at once (--close-first: the server closes first and holds
// TIME_WAIT) or when the client has closed (default: the client closes first). It counts what it
// accepted and, with --log-peers FILE, records every accepted peer as "ip:port" (one per line,
// with --log-times also the accept and close times in ms since start), so a test can check that
// every connection reached the server from a distinct (pool address, port) at any moment.
//
// One epoll loop per thread (--threads N uses SO_REUSEPORT listeners). Peer lines are buffered
// per thread and written in large blocks; SIGUSR1 flushes and prints the count, SIGINT/SIGTERM
// flush, print the final count and exit 0.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_flush_requests{0};

void on_stop_signal(int) { g_stop.store(true); }
void on_usr1(int) { g_flush_requests.fetch_add(1); }

struct Options {
    std::string address = "0.0.0.0";
    uint16_t port = 7000;
    int backlog = 65535;
    bool close_first = false;
    bool log_times = false;
    bool json = false;
    int threads = 1;
    std::string log_peers;
};

using Clock = std::chrono::steady_clock;
const Clock::time_point g_start = Clock::now();

uint64_t now_ms() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - g_start).count());
}

// The peer log shared by all threads: each thread appends to its own buffer and hands blocks
// of it over under this lock.
class PeerLog {
public:
    bool open(const std::string& path) {
        file_ = std::fopen(path.c_str(), "w");
        return file_ != nullptr;
    }
    bool enabled() const { return file_ != nullptr; }
    void write(const std::string& block) {
        if (file_ == nullptr || block.empty()) return;
        std::lock_guard<std::mutex> lock(mutex_);
        std::fwrite(block.data(), 1, block.size(), file_);
    }
    void flush() {
        if (file_ == nullptr) return;
        std::lock_guard<std::mutex> lock(mutex_);
        std::fflush(file_);
    }
    void close() {
        if (file_ == nullptr) return;
        std::fclose(file_);
        file_ = nullptr;
    }

private:
    std::FILE* file_ = nullptr;
    std::mutex mutex_;
};

PeerLog g_log;

struct ThreadStats {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> closed{0};
    std::atomic<uint64_t> accept_errors{0};
    std::atomic<uint64_t> open_now{0};
    std::atomic<uint64_t> max_open{0};
};

std::string peer_string(const sockaddr_in& sa) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    std::string s = ip;
    s += ':';
    s += std::to_string(ntohs(sa.sin_port));
    return s;
}

int make_listener(const Options& o, std::string& err) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o.threads > 1) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o.port);
    if (inet_pton(AF_INET, o.address.c_str(), &sa.sin_addr) != 1) {
        err = "bad --address " + o.address;
        ::close(fd);
        return -1;
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        err = "bind " + o.address + ":" + std::to_string(o.port) + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    if (listen(fd, o.backlog) < 0) {
        err = std::string("listen: ") + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

// One connection the server waits on (client closes first), with the log line to finish.
struct Pending {
    std::string peer;
    uint64_t accept_ms;
};

void serve(const Options& o, int listen_fd, ThreadStats& st) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);

    std::string buf;
    buf.reserve(1 << 17);
    std::unordered_map<int, Pending> pending;
    int seen_flush = g_flush_requests.load();

    auto log_line = [&](const std::string& peer, uint64_t accept_ms, uint64_t close_ms) {
        if (!g_log.enabled()) return;
        buf += peer;
        if (o.log_times) {
            buf += ' ';
            buf += std::to_string(accept_ms);
            buf += ' ';
            buf += std::to_string(close_ms);
        }
        buf += '\n';
        if (buf.size() >= (1 << 16)) {
            g_log.write(buf);
            buf.clear();
        }
    };
    auto close_conn = [&](int fd) {
        auto it = pending.find(fd);
        if (it != pending.end()) {
            log_line(it->second.peer, it->second.accept_ms, now_ms());
            pending.erase(it);
        }
        ::close(fd);
        st.closed.fetch_add(1, std::memory_order_relaxed);
        st.open_now.fetch_sub(1, std::memory_order_relaxed);
    };

    std::vector<epoll_event> events(256);
    char sink[4096];
    while (!g_stop.load()) {
        int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; ++i) {
            int fd = events[static_cast<size_t>(i)].data.fd;
            if (fd == listen_fd) {
                for (;;) {
                    sockaddr_in peer{};
                    socklen_t len = sizeof peer;
                    int c = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len,
                                    SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                            st.accept_errors.fetch_add(1, std::memory_order_relaxed);
                        break;
                    }
                    st.accepted.fetch_add(1, std::memory_order_relaxed);
                    uint64_t open = st.open_now.fetch_add(1, std::memory_order_relaxed) + 1;
                    if (open > st.max_open.load(std::memory_order_relaxed))
                        st.max_open.store(open, std::memory_order_relaxed);
                    uint64_t t = now_ms();
                    if (o.close_first) {
                        log_line(peer_string(peer), t, t);
                        ::close(c);
                        st.closed.fetch_add(1, std::memory_order_relaxed);
                        st.open_now.fetch_sub(1, std::memory_order_relaxed);
                    } else {
                        pending.emplace(c, Pending{peer_string(peer), t});
                        epoll_event cev{};
                        cev.events = EPOLLIN | EPOLLRDHUP;
                        cev.data.fd = c;
                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    }
                }
            } else {
                // Drain whatever the client sent; close on EOF or error.
                bool done = (events[static_cast<size_t>(i)].events & (EPOLLHUP | EPOLLERR)) != 0;
                for (;;) {
                    ssize_t r = ::read(fd, sink, sizeof sink);
                    if (r > 0) continue;
                    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                        done = true;
                    break;
                }
                if (done) close_conn(fd);
            }
        }
        int fr = g_flush_requests.load();
        if (fr != seen_flush) {
            seen_flush = fr;
            g_log.write(buf);
            buf.clear();
            g_log.flush();
        }
    }
    // Connections still open at exit are logged with close time = exit time.
    while (!pending.empty()) close_conn(pending.begin()->first);
    g_log.write(buf);
    ::close(ep);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    po::options_description desc(
        "race_server: accept-and-close TCP server for the SNAT port-race lab\nOptions");
    desc.add_options()
        ("help,h", "this help")
        ("address,a", po::value(&o.address)->default_value(o.address), "listen address")
        ("port,p", po::value(&o.port)->default_value(o.port), "listen port")
        ("backlog", po::value(&o.backlog)->default_value(o.backlog), "listen backlog")
        ("close-first", po::bool_switch(&o.close_first),
         "close each connection at once (the server closes first); "
         "default: wait for the client to close")
        ("log-peers", po::value(&o.log_peers), "write each accepted peer as ip:port to FILE")
        ("log-times", po::bool_switch(&o.log_times),
         "add accept and close time (ms since start) to each --log-peers line")
        ("threads", po::value(&o.threads)->default_value(o.threads),
         "accept threads (SO_REUSEPORT listeners)")
        ("json", po::bool_switch(&o.json), "print the final report as one JSON object");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "race_server: " << e.what() << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    if (o.threads < 1 || o.threads > 64) {
        std::cerr << "race_server: --threads must be 1..64\n";
        return 2;
    }
    if (!o.log_peers.empty() && !g_log.open(o.log_peers)) {
        std::cerr << "race_server: cannot open " << o.log_peers << ": " << std::strerror(errno)
                  << "\n";
        return 1;
    }

    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::vector<int> listeners;
    for (int i = 0; i < o.threads; ++i) {
        std::string err;
        int fd = make_listener(o, err);
        if (fd < 0) {
            std::cerr << "race_server: " << err << "\n";
            for (int l : listeners) ::close(l);
            return 1;
        }
        listeners.push_back(fd);
    }
    std::vector<ThreadStats> stats(static_cast<size_t>(o.threads));
    std::cerr << "race_server: listening on " << o.address << ":" << o.port
              << (o.close_first ? " (server closes first)" : " (client closes first)") << "\n";

    std::vector<std::thread> threads;
    for (size_t i = 1; i < listeners.size(); ++i)
        threads.emplace_back(serve, std::cref(o), listeners[i], std::ref(stats[i]));

    // The main thread serves too, and reports the count on SIGUSR1.
    std::thread reporter([&] {
        int seen = g_flush_requests.load();
        while (!g_stop.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            int fr = g_flush_requests.load();
            if (fr != seen) {
                seen = fr;
                uint64_t acc = 0;
                for (auto& s : stats) acc += s.accepted.load();
                std::cerr << "race_server: accepted " << acc << "\n";
            }
        }
    });
    serve(o, listeners[0], stats[0]);
    for (auto& t : threads) t.join();
    reporter.join();
    for (int l : listeners) ::close(l);
    g_log.close();

    uint64_t accepted = 0, closed = 0, errors = 0, max_open = 0;
    for (auto& s : stats) {
        accepted += s.accepted.load();
        closed += s.closed.load();
        errors += s.accept_errors.load();
        max_open += s.max_open.load();
    }
    if (o.json) {
        nlohmann::json j = {{"accepted", accepted},
                            {"closed", closed},
                            {"accept_errors", errors},
                            {"max_open", max_open},
                            {"seconds", static_cast<double>(now_ms()) / 1000.0}};
        std::cout << j.dump() << std::endl;
    } else {
        std::cout << "race_server: accepted " << accepted << " connections, accept errors "
                  << errors << ", at most " << max_open << " open at once" << std::endl;
    }
    return 0;
}
