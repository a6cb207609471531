// The control socket: a Unix stream socket serving newline-delimited JSON requests (API v1,
// control_protocol.h) on one background thread.
//
// One thread polls the listening socket and every client, so the handler is only ever called
// from that thread, one request at a time: the daemon's handler needs no locking of its own.
// Limits (Options): a request line longer than max_request is answered request_too_large and
// the connection closed; a connection that stalls for idle_timeout_ms in the middle of a line
// (or while its replies cannot be written) is closed; clients beyond max_clients are answered
// busy and closed. No input can crash the server: every problem is a reply or a closed client.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <sys/types.h>
#include <thread>

#include "control_protocol.h"

namespace snatgw {

struct ControlServerOptions {
    std::size_t max_request = 65536;  // bytes per request line, without the '\n'
    int idle_timeout_ms = 5000;       // a partial line (or unwritten reply) this long: close
    std::size_t max_clients = 32;
};

// The message of the `stopping` error, answered once the daemon's stop has begun.
std::string stopping_message(const std::string& why);

class ControlServer {
public:
    using Handler = ControlHandler;
    using Options = ControlServerOptions;

    ControlServer(std::string path, Handler handler, Options options = {});
    ~ControlServer();  // stop()
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Creates the parent directory if missing (0755), refuses if another live server answers
    // on the path (std::runtime_error "another snatgw is running: <path> answers"), replaces a
    // stale socket file, binds with mode 0600 (owner only), listens and starts the thread.
    // Throws std::runtime_error on any failure (nothing is left behind).
    void start();

    // Stops the thread, closes every connection, removes the socket file (if it is still ours).
    // Idempotent; called by the destructor.
    void stop();

    // From now on every request is answered with the error `stopping` ("the daemon is
    // stopping: <why>"), without calling the handler; a request being handled finishes. For
    // the daemon's shutdown: the socket keeps answering, with an error, until stop(). Any
    // thread; idempotent (the first reason stays).
    void refuse_requests(const std::string& why);
    bool refusing() const { return refusing_.load(std::memory_order_acquire); }

    const std::string& path() const { return path_; }
    bool running() const { return thread_.joinable(); }

private:
    void run();

    std::string path_;
    Handler handler_;
    Options options_;
    int listen_fd_ = -1;
    int wake_pipe_[2] = {-1, -1};  // stop() writes, the thread's poll wakes
    dev_t socket_dev_ = 0;         // identity of the file we bound, so stop() unlinks only ours
    ino_t socket_ino_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> refusing_{false};
    std::string refuse_why_;  // written once, before refusing_ is set
    std::atomic_flag refuse_claimed_ = ATOMIC_FLAG_INIT;
    std::thread thread_;
};

}  // namespace snatgw
