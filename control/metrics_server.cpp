// The /metrics HTTP server; see metrics_server.h.
#include "metrics_server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "prometheus_metrics.h"

namespace snatgw {

namespace {

constexpr const char* kIndexPage =
    "<html><head><title>snatgw</title></head><body><h1>snatgw</h1>"
    "<p><a href=\"/metrics\">metrics</a></p></body></html>\n";

// httplib's default sets SO_REUSEPORT, which would let a second server share a port already in
// use. SO_REUSEADDR alone still allows a restart over TIME_WAIT connections but refuses a port
// another socket listens on.
void socket_options(socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// httplib reports a failed bind as `false` only: bind once more ourselves to learn why.
std::string bind_failure(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
        rc != 0)
        return std::string("cannot resolve the address: ") + gai_strerror(rc);
    int err = 0;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        const int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        socket_options(fd);
        const bool ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1) == 0;
        err = ok ? 0 : errno;
        close(fd);
        if (err != 0) break;
    }
    freeaddrinfo(res);
    switch (err) {
        case 0: return "bind failed";  // the address became free meanwhile
        case EADDRINUSE: return "address in use";
        case EADDRNOTAVAIL: return "address not available on this host";
        case EACCES: return "permission denied";
        default: return std::strerror(err);
    }
}

}  // namespace

struct MetricsServer::Impl {
    httplib::Server server;
    std::function<std::string()> render;
    std::thread thread;
};

MetricsServer::MetricsServer(std::string listen, std::function<std::string()> render)
    : listen_(std::move(listen)), impl_(std::make_unique<Impl>()) {
    impl_->render = std::move(render);
    const auto colon = listen_.rfind(':');
    const auto bad = [&] {
        return std::runtime_error("metrics: bad listen address '" + listen_ +
                                  "' (want HOST:PORT, e.g. 127.0.0.1:9469)");
    };
    if (colon == std::string::npos || colon == 0 || colon + 1 == listen_.size()) throw bad();
    host_ = listen_.substr(0, colon);
    if (host_.size() >= 2 && host_.front() == '[' && host_.back() == ']')
        host_ = host_.substr(1, host_.size() - 2);
    const std::string port = listen_.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad();
    port_ = std::stoi(port);
    if (port_ > 65535) throw bad();
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
    if (impl_->thread.joinable()) return;
    httplib::Server& srv = impl_->server;
    srv.set_socket_options(socket_options);
    // A scrape is one request every few seconds: two threads are plenty.
    srv.new_task_queue = [] { return new httplib::ThreadPool(2); };
    srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        try {
            res.set_content(impl_->render(), kPrometheusContentType);
        } catch (const std::exception& e) {
            res.status = 500;
            res.set_content(std::string("cannot render the metrics: ") + e.what() + "\n",
                            "text/plain");
        }
    });
    srv.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(kIndexPage, "text/html");
    });

    bool bound;
    if (port_ == 0) {
        const int p = srv.bind_to_any_port(host_);
        bound = p > 0;
        if (bound) port_ = p;
    } else {
        bound = srv.bind_to_port(host_, port_);
    }
    if (!bound)
        throw std::runtime_error("metrics: cannot listen on " + listen_ + ": " +
                                 bind_failure(host_, port_));
    impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
    // stop() only interrupts a server that is running: wait for it, so a stop() right after
    // start() cannot miss it and leave the thread serving forever.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!srv.is_running()) {
        if (std::chrono::steady_clock::now() > deadline) {
            srv.stop();
            impl_->thread.join();
            throw std::runtime_error("metrics: the server on " + listen_ + " did not start");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void MetricsServer::stop() {
    if (!impl_->thread.joinable()) return;
    impl_->server.stop();
    impl_->thread.join();
}

}  // namespace snatgw
