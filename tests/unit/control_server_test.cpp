// Tests the control socket server (control/control_server.h) over real Unix sockets in a
// temporary directory, with a fake handler: framing (several requests per connection, requests
// split across writes, half-close), every error code, the limits (oversized line, idle partial
// line, too many clients), concurrent clients, handler serialisation and the socket file's
// life (mode 0600, live-daemon detection, stale file replacement, removal on stop).
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_server.h"

namespace snatgw::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/snatgw-control-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

// A blocking client with a line reader; every wait is bounded so a broken server fails the
// test instead of hanging it.
class Client {
public:
    explicit Client(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_un addr = unix_address(path);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
            throw std::runtime_error("cannot connect to " + path + ": " + std::strerror(errno));
    }
    ~Client() { close(); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    int fd() const { return fd_; }

    // False once the server has closed the connection.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // The next line without its '\n'; nullopt on EOF, reset or timeout.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout = 5000ms) {
        const auto deadline = Clock::now() + timeout;
        while (true) {
            if (const std::size_t nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            if (!fill(deadline)) return std::nullopt;
        }
    }

    json request(const json& req) {
        if (!send(req.dump() + "\n")) throw std::runtime_error("send failed");
        const auto line = read_line();
        if (!line) throw std::runtime_error("no reply");
        return json::parse(*line);
    }

    // Whether the server closes the connection within `timeout` (data before EOF is dropped).
    bool closed_within(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        while (fill(deadline)) buffer_.clear();
        return eof_;
    }

private:
    // Reads more into buffer_. False on EOF/reset (eof_ set) or at the deadline.
    bool fill(Clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        buffer_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string buffer_;
    bool eof_ = false;
};

// The fake daemon: a few commands with known answers and every error code on demand; it
// records how calls were made, to check the server serialises them on one thread.
struct FakeDaemon {
    std::atomic<int> calls{0};
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::mutex mutex;
    std::set<std::thread::id> threads;

    json handle(const ControlRequest& r) {
        ++calls;
        const int now = ++inside;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        {
            std::lock_guard lock(mutex);
            threads.insert(std::this_thread::get_id());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));  // widen any overlap
        --inside;

        if (r.command == "version") return {{"daemon", "fake"}, {"protocol", 1}};
        if (r.command == "sessions") return {{"echo", r.args}};
        if (r.command == "pool.del") {
            const std::string name = r.args["name"];
            if (name == "missing") throw ControlError("not_found", "no pool named 'missing'");
            if (name == "taken") throw ControlError("conflict", "pool 'taken' differs");
            if (name == "broken") throw ControlError("invalid_config", "pool 'broken': no addresses left");
            if (name == "crash") throw std::logic_error("boom");
            return {{"removed", name}, {"draining_sessions", 0}};
        }
        return json::object();
    }

    ControlHandler handler() {
        return [this](const ControlRequest& r) { return handle(r); };
    }
};

class ControlServerTest : public ::testing::Test {
protected:
    std::string socket_path() const { return dir_.path() + "/run/snatgw/snatgw.sock"; }

    void start(ControlServerOptions options = {}) {
        server_ = std::make_unique<ControlServer>(socket_path(), fake_.handler(), options);
        server_->start();
    }

    TempDir dir_;
    FakeDaemon fake_;
    std::unique_ptr<ControlServer> server_;
};

std::string error_code(const json& reply) { return reply.value("/error/code"_json_pointer, std::string()); }

// ---------------------------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------------------------

TEST_F(ControlServerTest, AnswersAValidRequest) {
    start();
    Client c(socket_path());
    const json reply = c.request({{"version", 1}, {"command", "version"}, {"id", "v"}});
    EXPECT_EQ(reply, json({{"version", 1}, {"ok", true}, {"id", "v"}, {"result", {{"daemon", "fake"}, {"protocol", 1}}}}));
    EXPECT_EQ(fake_.calls, 1);
}

TEST_F(ControlServerTest, EveryErrorCodeIsReachable) {
    ControlServerOptions options;
    options.max_clients = 1;
    options.max_request = 4096;
    start(options);
    std::set<std::string> seen;
    {
        Client c(socket_path());
        const std::pair<std::string, std::string> cases[] = {
            {"this is not json", "parse_error"},
            {R"({"command":"sessions","args":{"limit":0}})", "bad_request"},
            {R"({"command":"reboot"})", "unknown_command"},
            {R"({"version":2,"command":"stats"})", "unsupported_version"},
            {R"({"command":"pool.del","args":{"name":"missing"}})", "not_found"},
            {R"({"command":"pool.del","args":{"name":"taken"}})", "conflict"},
            {R"({"command":"pool.del","args":{"name":"broken"}})", "invalid_config"},
            {R"({"command":"pool.del","args":{"name":"crash"}})", "internal"},
        };
        for (const auto& [line, code] : cases) {
            ASSERT_TRUE(c.send(line + "\n"));
            const auto reply = c.read_line();
            ASSERT_TRUE(reply) << line;
            const json r = json::parse(*reply);
            EXPECT_EQ(r["ok"], false) << line;
            EXPECT_EQ(error_code(r), code) << line;
            EXPECT_FALSE(r["error"]["message"].get<std::string>().empty());
            seen.insert(error_code(r));
        }
        // The slot is taken: the next client is told so and closed.
        Client extra(socket_path());
        const auto busy = extra.read_line();
        ASSERT_TRUE(busy);
        seen.insert(error_code(json::parse(*busy)));
        EXPECT_TRUE(extra.closed_within(2000ms));
    }
    // The slot frees once the server has seen the close; retry until it has.
    const auto deadline = Clock::now() + 3s;
    while (Clock::now() < deadline) {
        Client c(socket_path());
        c.send(std::string(5000, 'x'));
        const auto reply = c.read_line();
        ASSERT_TRUE(reply);
        const std::string code = error_code(json::parse(*reply));
        if (code == "busy") {
            std::this_thread::sleep_for(10ms);
            continue;
        }
        seen.insert(code);
        EXPECT_TRUE(c.closed_within(2000ms));
        break;
    }
    const std::set<std::string> all = {"parse_error", "bad_request", "unknown_command", "unsupported_version",
                                       "request_too_large", "busy", "not_found", "conflict",
                                       "invalid_config", "internal"};
    EXPECT_EQ(seen, all);
}

TEST_F(ControlServerTest, ErrorRepliesEchoTheId) {
    start();
    Client c(socket_path());
    const json r = c.request({{"command", "sessions"}, {"args", {{"worker", "one"}}}, {"id", {{"n", 3}}}});
    EXPECT_EQ(r["id"], json({{"n", 3}}));
    EXPECT_EQ(error_code(r), "bad_request");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("args.worker"), std::string::npos);
    const json u = c.request({{"command", "stats"}, {"args", {{"x", 1}}}, {"id", 9}});
    EXPECT_EQ(u["id"], 9);
    EXPECT_NE(u["error"]["message"].get<std::string>().find("args.x"), std::string::npos);
    const json n = c.request({{"command", "stats"}, {"args", 1}});
    EXPECT_EQ(error_code(n), "bad_request");
    EXPECT_FALSE(n.contains("id"));
    EXPECT_EQ(fake_.calls, 0);  // none reached the handler
}

TEST_F(ControlServerTest, SeveralRequestsOnOneConnectionInOrder) {
    start();
    Client c(socket_path());
    std::string batch;
    for (int i = 0; i < 200; ++i)
        batch += json{{"command", "sessions"}, {"args", {{"offset", i}}}, {"id", i}}.dump() + "\n";
    ASSERT_TRUE(c.send(batch));
    for (int i = 0; i < 200; ++i) {
        const auto line = c.read_line();
        ASSERT_TRUE(line) << i;
        const json r = json::parse(*line);
        EXPECT_EQ(r["id"], i);
        EXPECT_EQ(r["result"]["echo"]["offset"], i);
    }
    // And one after another on the same connection.
    for (int i = 0; i < 20; ++i) EXPECT_EQ(c.request({{"command", "version"}, {"id", i}})["id"], i);
}

TEST_F(ControlServerTest, RequestSplitAcrossWrites) {
    start();
    Client c(socket_path());
    const std::string two = R"({"command":"sessions","args":{"limit":7},"id":"a"})"
                            "\n"
                            R"({"command":"version","id":"b"})"
                            "\n";
    for (std::size_t i = 0; i < two.size(); i += 5) {
        ASSERT_TRUE(c.send(two.substr(i, 5)));
        std::this_thread::sleep_for(1ms);
    }
    const auto a = c.read_line();
    const auto b = c.read_line();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(json::parse(*a)["result"]["echo"]["limit"], 7);
    EXPECT_EQ(json::parse(*b)["id"], "b");
}

TEST_F(ControlServerTest, ByteByByteRequest) {
    start();
    Client c(socket_path());
    for (char ch : std::string(R"({"command":"version","id":1})" "\n")) ASSERT_TRUE(c.send(std::string(1, ch)));
    const auto line = c.read_line();
    ASSERT_TRUE(line);
    EXPECT_EQ(json::parse(*line)["result"]["daemon"], "fake");
}

TEST_F(ControlServerTest, HalfClosedClientStillGetsItsReplies) {
    start();
    Client c(socket_path());
    ASSERT_TRUE(c.send(R"({"command":"version","id":1})" "\n" R"({"command":"version","id":2})" "\n{\"partial"));
    ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
    const auto one = c.read_line();
    const auto two = c.read_line();
    ASSERT_TRUE(one && two);
    EXPECT_EQ(json::parse(*one)["id"], 1);
    EXPECT_EQ(json::parse(*two)["id"], 2);
    EXPECT_TRUE(c.closed_within(2000ms));  // the partial line has no answer
}

TEST_F(ControlServerTest, GarbageGetsOneErrorPerLineAndTheServerLives) {
    start();
    std::string garbage;
    uint32_t x = 7;
    for (int i = 0; i < 20000; ++i) {
        x = x * 1103515245u + 12345u;
        garbage.push_back(static_cast<char>(x >> 16));
    }
    garbage += "\n";
    const auto lines = static_cast<std::size_t>(std::count(garbage.begin(), garbage.end(), '\n'));
    {
        Client c(socket_path());
        ASSERT_TRUE(c.send(garbage));
        for (std::size_t i = 0; i < lines; ++i) {
            const auto line = c.read_line();
            ASSERT_TRUE(line) << i << " of " << lines;
            const json r = json::parse(*line);
            EXPECT_EQ(r["ok"], false);
        }
    }
    Client d(socket_path());
    EXPECT_EQ(d.request({{"command", "version"}})["ok"], true);
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

TEST_F(ControlServerTest, OversizedLineIsRefusedAndClosed) {
    ControlServerOptions options;
    options.max_request = 1024;
    start(options);
    {  // no newline at all: refused as soon as the limit is passed
        Client c(socket_path());
        c.send(std::string(3000, 'x'));
        const auto line = c.read_line();
        ASSERT_TRUE(line);
        const json r = json::parse(*line);
        EXPECT_EQ(error_code(r), "request_too_large");
        EXPECT_NE(r["error"]["message"].get<std::string>().find("1024"), std::string::npos);
        EXPECT_TRUE(c.closed_within(2000ms));
    }
    {  // a good request first is answered, the long one after it refused
        Client c(socket_path());
        c.send(R"({"command":"version","id":1})" "\n" + std::string(1500, ' ') + "{}\n");
        const auto first = c.read_line();
        const auto second = c.read_line();
        ASSERT_TRUE(first && second);
        EXPECT_EQ(json::parse(*first)["ok"], true);
        EXPECT_EQ(error_code(json::parse(*second)), "request_too_large");
        EXPECT_TRUE(c.closed_within(2000ms));
    }
    {  // exactly at the limit is fine
        Client c(socket_path());
        std::string req = R"({"command":"version","id":"max"})";
        req += std::string(1024 - req.size(), ' ');
        ASSERT_EQ(req.size(), 1024u);
        c.send(req + "\n");
        const auto line = c.read_line();
        ASSERT_TRUE(line);
        EXPECT_EQ(json::parse(*line)["id"], "max");
    }
}

TEST_F(ControlServerTest, HalfSentRequestIsClosedAfterTheIdleTimeout) {
    ControlServerOptions options;
    options.idle_timeout_ms = 200;
    start(options);
    Client quiet(socket_path());  // connected, nothing sent: not idle mid-request, stays open
    Client c(socket_path());
    ASSERT_TRUE(c.send(R"({"command":"vers)"));
    const auto t0 = Clock::now();
    EXPECT_TRUE(c.closed_within(3000ms));
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 150ms);
    EXPECT_LT(waited, 2000ms);
    EXPECT_EQ(quiet.request({{"command", "version"}})["ok"], true);
}

TEST_F(ControlServerTest, TooManyClientsGetBusy) {
    ControlServerOptions options;
    options.max_clients = 2;
    start(options);
    Client a(socket_path()), b(socket_path());
    ASSERT_EQ(a.request({{"command", "version"}})["ok"], true);  // both surely accepted
    ASSERT_EQ(b.request({{"command", "version"}})["ok"], true);
    Client c(socket_path());
    const auto line = c.read_line();
    ASSERT_TRUE(line);
    const json r = json::parse(*line);
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(error_code(r), "busy");
    EXPECT_TRUE(c.closed_within(2000ms));
    EXPECT_EQ(a.request({{"command", "version"}})["ok"], true);  // the others are unaffected
}

TEST_F(ControlServerTest, AClientThatDoesNotReadDoesNotBlockOthers) {
    ControlServerOptions options;
    options.idle_timeout_ms = 300;
    start(options);
    Client hog(socket_path());
    std::string batch;
    for (int i = 0; i < 5000; ++i)
        batch += json{{"command", "sessions"}, {"args", {{"pool", std::string(30, 'p')}}}}.dump() + "\n";
    std::thread writer([&] { hog.send(batch); });  // blocks once the server stops reading
    std::this_thread::sleep_for(50ms);
    Client c(socket_path());
    const auto t0 = Clock::now();
    EXPECT_EQ(c.request({{"command", "version"}})["ok"], true);
    EXPECT_LT(Clock::now() - t0, 1000ms);
    // The hog's replies stay unwritten: after the idle timeout it is closed (reading now would
    // be progress, so wait first; what was written before the close is still readable).
    std::this_thread::sleep_for(1000ms);
    EXPECT_TRUE(hog.closed_within(5000ms));
    writer.join();
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

TEST_F(ControlServerTest, EightConcurrentClientsAllAnsweredOnOneThread) {
    start();
    constexpr int kClients = 8, kRequests = 150;
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kClients; ++t) {
        threads.emplace_back([&, t] {
            try {
                Client c(socket_path());
                auto check = [&](const std::optional<std::string>& line, int i) {
                    const json r = line ? json::parse(*line) : json();
                    if (r.value("ok", false) && r["id"] == json({t, i}) &&
                        r["result"]["echo"]["offset"] == t * 100000 + i)
                        ++good;
                    else
                        ++bad;
                };
                if (t % 2 == 0) {  // one at a time
                    for (int i = 0; i < kRequests; ++i) {
                        c.send(json{{"command", "sessions"}, {"args", {{"offset", t * 100000 + i}}}, {"id", {t, i}}}
                                   .dump() + "\n");
                        check(c.read_line(), i);
                    }
                } else {  // pipelined
                    std::string batch;
                    for (int i = 0; i < kRequests; ++i)
                        batch += json{{"command", "sessions"}, {"args", {{"offset", t * 100000 + i}}}, {"id", {t, i}}}
                                     .dump() + "\n";
                    c.send(batch);
                    for (int i = 0; i < kRequests; ++i) check(c.read_line(), i);
                }
            } catch (const std::exception&) {
                ++bad;
            }
        });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(good, kClients * kRequests);
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(fake_.calls, kClients * kRequests);
    EXPECT_EQ(fake_.max_inside, 1);  // never two handler calls at once
    EXPECT_EQ(fake_.threads.size(), 1u);
    EXPECT_EQ(fake_.threads.count(std::this_thread::get_id()), 0u);
}

// ---------------------------------------------------------------------------------------------
// The socket file
// ---------------------------------------------------------------------------------------------

TEST_F(ControlServerTest, SocketIsOwnerOnlyInACreatedDirectory) {
    start();
    struct stat st{};
    ASSERT_EQ(::stat(socket_path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    struct stat dir{};
    ASSERT_EQ(::stat((dir_.path() + "/run/snatgw").c_str(), &dir), 0);
    EXPECT_TRUE(S_ISDIR(dir.st_mode));
    EXPECT_EQ(dir.st_mode & 0700, 0700u);
    EXPECT_EQ(dir.st_mode & 0022, 0u);  // 0755 at most: nobody else may replace the socket
}

TEST_F(ControlServerTest, SecondServerOnALivePathRefuses) {
    start();
    ControlServer second(socket_path(), fake_.handler());
    try {
        second.start();
        FAIL() << "second server started";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "another snatgw is running: " + socket_path() + " answers");
    }
    EXPECT_FALSE(second.running());
    second.stop();  // must not remove the first server's socket
    Client c(socket_path());
    EXPECT_EQ(c.request({{"command", "version"}})["ok"], true);
}

TEST_F(ControlServerTest, StaleSocketFileIsReplaced) {
    std::filesystem::create_directories(dir_.path() + "/run/snatgw");
    {  // a socket file nobody listens on: what a crashed daemon leaves
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        const sockaddr_un addr = unix_address(socket_path());
        ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
        ::close(fd);
    }
    ASSERT_TRUE(std::filesystem::is_socket(socket_path()));
    start();
    Client c(socket_path());
    EXPECT_EQ(c.request({{"command", "version"}})["ok"], true);
}

TEST_F(ControlServerTest, RefusesToReplaceSomethingThatIsNotASocket) {
    std::filesystem::create_directories(dir_.path() + "/run/snatgw");
    std::ofstream(socket_path()) << "precious\n";
    ControlServer s(socket_path(), fake_.handler());
    EXPECT_THROW(s.start(), std::runtime_error);
    std::ifstream in(socket_path());
    std::string content;
    std::getline(in, content);
    EXPECT_EQ(content, "precious");
}

TEST_F(ControlServerTest, PathTooLongIsAnError) {
    ControlServer s(dir_.path() + "/" + std::string(120, 'a'), fake_.handler());
    EXPECT_THROW(s.start(), std::runtime_error);
}

TEST_F(ControlServerTest, StopClosesClientsRemovesTheSocketAndCanRestart) {
    start();
    Client c(socket_path());
    ASSERT_EQ(c.request({{"command", "version"}})["ok"], true);
    server_->stop();
    EXPECT_FALSE(server_->running());
    EXPECT_FALSE(std::filesystem::exists(socket_path()));
    EXPECT_TRUE(c.closed_within(2000ms));
    server_->stop();  // idempotent
    server_->start();
    Client d(socket_path());
    EXPECT_EQ(d.request({{"command", "version"}})["ok"], true);
}

TEST_F(ControlServerTest, StopLeavesASocketThatIsNoLongerOurs) {
    start();
    ASSERT_EQ(::unlink(socket_path().c_str()), 0);
    ControlServer replacement(socket_path(), fake_.handler());
    replacement.start();
    server_->stop();
    ASSERT_TRUE(std::filesystem::exists(socket_path()));
    Client c(socket_path());
    EXPECT_EQ(c.request({{"command", "version"}})["ok"], true);
}

// The daemon's stop: once refuse_requests() is called, every request (on a connection that was
// already open, and on new ones) is answered with the `stopping` error naming the reason, the
// id echoed, and the handler is not called again.
TEST_F(ControlServerTest, RefusesRequestsOnceTheStopBegins) {
    start();
    Client before(socket_path());
    EXPECT_EQ(before.request({{"command", "version"}})["ok"], true);
    const int calls = fake_.calls;
    EXPECT_FALSE(server_->refusing());
    server_->refuse_requests("worker failed: worker 1: exception: boom");
    server_->refuse_requests("second reason");  // the first one stays
    EXPECT_TRUE(server_->refusing());
    Client after(socket_path());
    for (Client* c : {&before, &after}) {
        const json r = c->request({{"command", "stats"}, {"id", 7}});
        EXPECT_EQ(r["ok"], false);
        EXPECT_EQ(r["id"], 7);
        EXPECT_EQ(error_code(r), "stopping");
        EXPECT_EQ(r["error"]["message"],
                  "the daemon is stopping (worker failed: worker 1: exception: boom); no more "
                  "requests are served");
    }
    EXPECT_EQ(fake_.calls, calls);
    EXPECT_EQ(stopping_message("stop requested"),
              "the daemon is stopping (stop requested); no more requests are served");
}

}  // namespace
}  // namespace snatgw::test
