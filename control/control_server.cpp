// The control socket's server: socket file set-up, one poll() thread, line framing and the
// limits of the contract; see control_server.h.
#include "control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

namespace snatgw {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE and friends

std::runtime_error sys_error(const std::string& what) {
    return std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_un address_of(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        throw std::runtime_error("control socket path '" + path + "' must be 1 to " +
                                 std::to_string(sizeof(addr.sun_path) - 1) + " characters");
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

// mkdir -p with mode 0755 for what is missing; existing directories are left as they are.
void make_parent_directories(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::filesystem::path partial;
    for (const auto& part : parent) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
            throw sys_error("cannot create directory " + partial.string());
    }
}

// Whether a server accepts connections on `path`. Non-blocking, so a live server with a full
// backlog (EAGAIN) counts as live instead of blocking us.
bool answers(const sockaddr_un& addr) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw sys_error("socket");
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    const int err = errno;
    ::close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return true;
    if (err == ECONNREFUSED || err == ENOENT) return false;
    errno = err;
    throw sys_error("cannot probe " + std::string(addr.sun_path));
}

struct Client {
    int fd = -1;
    std::string in;            // received bytes not yet answered
    std::size_t scanned = 0;   // bytes of `in` known to hold no '\n'
    std::string out;           // reply bytes not yet written
    Clock::time_point last_progress;
    bool peer_done = false;    // EOF read: answer the complete lines, then close
    bool closing = false;      // close once `out` is written (request_too_large)
    bool dead = false;         // to be removed
};

void close_client(Client& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.dead = true;
}

// Writes what the socket takes. False on a broken connection.
bool flush(Client& c) {
    while (!c.out.empty()) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.out.erase(0, static_cast<std::size_t>(n));
            c.last_progress = Clock::now();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler, Options options)
    : path_(std::move(path)), handler_(std::move(handler)), options_(options) {}

ControlServer::~ControlServer() {
    try {
        stop();
    } catch (...) {  // a destructor must not throw; stop() only fails on join of a dead thread
    }
}

void ControlServer::start() {
    if (running()) throw std::runtime_error("control server on " + path_ + " is already running");
    const sockaddr_un addr = address_of(path_);
    make_parent_directories(path_);

    struct stat st{};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error(path_ + " exists and is not a socket; not replacing it");
        if (answers(addr)) throw std::runtime_error("another snatgw is running: " + path_ + " answers");
        if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
            throw sys_error("cannot remove stale socket " + path_);
    }

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw sys_error("socket");
    bool bound = false;
    try {
        // On Linux the socket file takes the socket inode's mode at bind: owner-only from the
        // first instant. The chmod after bind is what guarantees it everywhere.
        (void)::fchmod(fd, 0600);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
            throw sys_error("cannot bind " + path_);
        bound = true;
        if (::chmod(path_.c_str(), 0600) != 0) throw sys_error("cannot chmod " + path_);
        if (::listen(fd, 64) != 0) throw sys_error("cannot listen on " + path_);
        if (::stat(path_.c_str(), &st) != 0) throw sys_error("cannot stat " + path_);
        socket_dev_ = st.st_dev;
        socket_ino_ = st.st_ino;
        if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) throw sys_error("pipe");
        listen_fd_ = fd;
        stopping_ = false;
        thread_ = std::thread(&ControlServer::run, this);
    } catch (...) {
        ::close(fd);
        listen_fd_ = -1;
        for (int& p : wake_pipe_)
            if (p >= 0) ::close(std::exchange(p, -1));
        if (bound) ::unlink(path_.c_str());
        throw;
    }
}

void ControlServer::stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    const char byte = 'x';
    (void)!::write(wake_pipe_[1], &byte, 1);
    thread_.join();
    ::close(std::exchange(listen_fd_, -1));
    for (int& p : wake_pipe_) ::close(std::exchange(p, -1));
    // Unlink only the file we bound: a later server may have replaced a path we no longer own.
    struct stat st{};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
        ::unlink(path_.c_str());
}

std::string stopping_message(const std::string& why) {
    return "the daemon is stopping (" + why + "); no more requests are served";
}

void ControlServer::refuse_requests(const std::string& why) {
    if (refuse_claimed_.test_and_set()) return;
    refuse_why_ = why;
    refusing_.store(true, std::memory_order_release);
}

void ControlServer::run() {
    // Once refusing: every request gets the `stopping` error (ids echoed, as for any error).
    const Handler refuse = [this](const ControlRequest&) -> nlohmann::json {
        throw ControlError("stopping", stopping_message(refuse_why_));
    };

    std::vector<Client> clients;
    std::vector<pollfd> fds;
    std::vector<char> buf(kReadChunk);
    Clock::time_point accept_paused_until{};
    const auto idle = std::chrono::milliseconds(options_.idle_timeout_ms);

    // Answers the complete lines of `c` while its replies drain; applies the line limit.
    auto serve = [&](Client& c) {
        std::size_t consumed = 0;
        while (!c.dead) {
            if (!flush(c)) {
                close_client(c);
                break;
            }
            if (!c.out.empty()) break;  // wait for POLLOUT before answering more
            if (c.closing) {
                close_client(c);
                break;
            }
            const std::size_t nl = c.in.find('\n', consumed + c.scanned);
            const std::size_t line_end = nl == std::string::npos ? c.in.size() : nl;
            if (line_end - consumed > options_.max_request) {
                c.out += error_reply(nullptr, "request_too_large",
                                     "request line longer than " + std::to_string(options_.max_request) +
                                         " bytes; closing the connection");
                c.closing = true;
                c.in.clear();
                c.scanned = 0;
                consumed = 0;
                continue;
            }
            if (nl == std::string::npos) {
                c.scanned = c.in.size() - consumed;
                if (c.peer_done) {  // a partial line at EOF has no answer
                    close_client(c);
                    break;
                }
                break;
            }
            const std::string_view line(c.in.data() + consumed, nl - consumed);
            c.out += answer_request_line(line, refusing() ? refuse : handler_);
            consumed = nl + 1;
            c.scanned = 0;
        }
        if (!c.dead) c.in.erase(0, consumed);
    };

    auto accept_clients = [&] {
        for (int i = 0; i < 64; ++i) {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)  // EMFILE, ENOBUFS...: back off
                    accept_paused_until = Clock::now() + kAcceptPause;
                return;
            }
            if (clients.size() >= options_.max_clients) {
                const std::string reply = error_reply(
                    nullptr, "busy", "too many control clients (" + std::to_string(options_.max_clients) +
                                         "); try again later");
                (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                ::close(fd);
                continue;
            }
            Client c;
            c.fd = fd;
            c.last_progress = Clock::now();
            try {
                clients.push_back(std::move(c));
            } catch (...) {  // out of memory: refuse this one
                ::close(fd);
                throw;
            }
        }
    };

    // One poll round; false when stop() asked to stop.
    auto round = [&]() -> bool {
        const Clock::time_point now = Clock::now();
        fds.clear();
        fds.push_back({wake_pipe_[0], POLLIN, 0});
        const bool accepting = now >= accept_paused_until;
        fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
        int timeout_ms = accepting ? -1 : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(
                                                               accept_paused_until - now).count());
        for (const Client& c : clients) {
            short events = 0;
            if (!c.out.empty()) events = POLLOUT;
            else if (!c.peer_done && !c.closing) events = POLLIN;
            fds.push_back({c.fd, events, 0});
            if (!c.in.empty() || !c.out.empty()) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.last_progress + idle - now);
                const int ms = static_cast<int>(std::max<int64_t>(0, left.count()));
                timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
            }
        }

        if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
            if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // ENOMEM
            return true;
        }
        if (fds[0].revents != 0 || stopping_) return false;

        // Clients first (their pollfds follow the two fixed ones), then new ones.
        for (std::size_t i = 0; i < clients.size(); ++i) {
            Client& c = clients[i];
            const short rev = fds[i + 2].revents;
            if (rev == 0) continue;
            if (rev & POLLNVAL) {
                close_client(c);
                continue;
            }
            try {
                if ((rev & POLLIN) || ((rev & (POLLHUP | POLLERR)) && c.out.empty())) {
                    const ssize_t n = ::recv(c.fd, buf.data(), buf.size(), MSG_DONTWAIT);
                    if (n > 0) {
                        c.in.append(buf.data(), static_cast<std::size_t>(n));
                        c.last_progress = Clock::now();
                    } else if (n == 0) {
                        c.peer_done = true;
                    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        close_client(c);
                        continue;
                    }
                }
                serve(c);  // also writes pending replies on POLLOUT / finds a broken peer on POLLHUP
            } catch (...) {  // out of memory for this client's buffers: drop the client, not the server
                close_client(c);
            }
        }

        const Clock::time_point after = Clock::now();
        for (Client& c : clients)
            if (!c.dead && (!c.in.empty() || !c.out.empty()) && after - c.last_progress >= idle)
                close_client(c);
        std::erase_if(clients, [](const Client& c) { return c.dead; });

        if (accepting && (fds[1].revents & POLLIN)) accept_clients();
        return true;
    };

    while (!stopping_) {
        try {
            if (!round()) break;
        } catch (...) {  // out of memory outside a client (poll set, accept): wait and retry
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    for (Client& c : clients) close_client(c);
}

}  // namespace snatgw
