// The Prometheus endpoint: a small HTTP server (cpp-httplib) on its own thread.
//
//   GET /metrics  200, the text `render()` returns (Prometheus text format 0.0.4)
//   GET /         a short page linking /metrics
//   anything else 404
//
// `render` runs on the server's threads (at most two requests at a time): it must be safe to
// call from there (collect_stats + prometheus_text is). An exception from it answers 500.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace snatgw {

class MetricsServer {
public:
    // listen: "HOST:PORT" ("127.0.0.1:9469", "0.0.0.0:9469", "[::1]:9469"); port 0 picks a
    // free port (see port()). Nothing is bound before start(). Throws std::runtime_error when
    // `listen` is not HOST:PORT.
    MetricsServer(std::string listen, std::function<std::string()> render);
    ~MetricsServer();  // stop()
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds and starts serving. Throws std::runtime_error with one clear sentence when the
    // address is malformed or cannot be bound, e.g.
    // "metrics: cannot listen on 127.0.0.1:9469: address in use".
    void start();
    // Stops serving and joins the thread. Safe to repeat, and without start().
    void stop();

    // The bound port (after start()); the configured one before.
    int port() const { return port_; }
    const std::string& listen() const { return listen_; }

private:
    struct Impl;
    std::string listen_;
    std::string host_;
    int port_ = 0;
    std::unique_ptr<Impl> impl_;
};

}  // namespace snatgw
