// The NAT event log's writer thread and its configuration; see event_logger.h.
#include "event_logger.h"

#include <arpa/inet.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/syslog_sink.h>
#include <syslog.h>

#include <ctime>
#include <filesystem>
#include <iterator>
#include <stdexcept>

#include "nat_event.h"

namespace snatgw {

namespace {

constexpr std::string_view kFilePrefix = "file:";
constexpr unsigned kBatch = 256;  // events per dequeue

const char* proto_name(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        default: return nullptr;
    }
}

template <typename Out>
void format_time_to(Out out, std::chrono::system_clock::time_point when) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(when.time_since_epoch()).count();
    // Floor division, so times before 1970 (never expected) still print sanely.
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    long long milli = ms % 1000;
    if (milli < 0) milli += 1000, --secs;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    fmt::format_to(out, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
}

// An address in network byte order, with its port (TCP, UDP) or identifier (ICMP).
template <typename Out>
void format_endpoint(Out out, const char* label, uint32_t addr_be, uint16_t port_be,
                     bool icmp, bool with_port) {
    const uint32_t a = ntohl(addr_be);
    fmt::format_to(out, " {} {}.{}.{}.{}", label, a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
                   a & 0xff);
    if (!with_port) return;
    if (icmp) fmt::format_to(out, " id {}", ntohs(port_be));
    else fmt::format_to(out, ":{}", ntohs(port_be));
}

template <typename Out>
void format_event_to(Out out, const NatEvent& e, std::chrono::system_clock::time_point when) {
    format_time_to(out, when);
    fmt::format_to(out, " {} ", event_type_name(e.type));
    if (const char* name = proto_name(e.proto)) fmt::format_to(out, "{}", name);
    else fmt::format_to(out, "proto {}", unsigned{e.proto});
    const bool icmp = e.proto == IPPROTO_ICMP;
    format_endpoint(out, "inside", e.inside_addr, e.inside_port, icmp, true);
    format_endpoint(out, "outside", e.outside_addr, e.outside_port, icmp, true);
    // An ICMP echo session's remote has no port (the key holds 0).
    format_endpoint(out, "remote", e.remote_addr, e.remote_port, false, !icmp);
    if (e.type == EventType::Deleted) fmt::format_to(out, " reason {}", delete_reason_name(e.reason));
    fmt::format_to(out, " worker {}", e.worker);
}

std::shared_ptr<spdlog::sinks::sink> open_target(const EventLogConfig& c) {
    const EventTarget t = parse_event_target(c.target);
    if (t.syslog)
        return std::make_shared<spdlog::sinks::syslog_sink_mt>("snatgw", LOG_PID, LOG_DAEMON,
                                                               false);
    const std::filesystem::path path(t.path);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec)
        throw ConfigError("events.target: cannot create directory '" +
                          path.parent_path().string() + "': " + ec.message());
    try {
        return std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
            t.path, std::size_t{c.max_size_mb} * 1024 * 1024, c.max_files);
    } catch (const spdlog::spdlog_ex& e) {
        throw ConfigError("events.target: cannot open '" + t.path + "': " + e.what());
    }
}

}  // namespace

EventTarget parse_event_target(std::string_view target) {
    if (target == "syslog") return {true, {}};
    if (target.substr(0, kFilePrefix.size()) == kFilePrefix) {
        const std::string path(target.substr(kFilePrefix.size()));
        if (path.empty() || path.front() != '/')
            throw ConfigError("events.target: '" + std::string(target) +
                              "': the file must be an absolute path (file:/var/log/...)");
        if (path.back() == '/')
            throw ConfigError("events.target: '" + std::string(target) +
                              "' names a directory, not a file");
        return {false, path};
    }
    throw ConfigError("events.target: '" + std::string(target) +
                      "' is neither 'syslog' nor 'file:/absolute/path'");
}

void validate_event_log_config(const EventLogConfig& c) {
    parse_event_target(c.target);
    if (c.max_size_mb < 1 || c.max_size_mb > kEventMaxSizeMbMax)
        throw ConfigError("events.max_size_mb: " + std::to_string(c.max_size_mb) +
                          " is out of range (1 .. " + std::to_string(kEventMaxSizeMbMax) + ")");
    if (c.max_files < 1 || c.max_files > kEventMaxFilesMax)
        throw ConfigError("events.max_files: " + std::to_string(c.max_files) +
                          " is out of range (1 .. " + std::to_string(kEventMaxFilesMax) + ")");
    if (c.ring < kEventRingMin || c.ring > kEventRingMax || (c.ring & (c.ring - 1)) != 0)
        throw ConfigError("events.ring: " + std::to_string(c.ring) +
                          " must be a power of two from " + std::to_string(kEventRingMin) +
                          " to " + std::to_string(kEventRingMax));
}

EventLogger::EventLogger(const EventLogConfig& config, std::vector<EventSink*> sinks,
                         EventClock clock)
    : sinks_(std::move(sinks)), lost_reported_(sinks_.size(), 0), clock_(std::move(clock)) {
    validate_event_log_config(config);
    for (const EventSink* s : sinks_)
        if (s == nullptr) throw std::invalid_argument("EventLogger: a worker's sink is null");
    if (!clock_.worker_now_ms || !clock_.wall_now)
        throw std::invalid_argument("EventLogger: the clock is incomplete");
    log_ = std::make_shared<spdlog::logger>("snatgw-events", open_target(config));
    log_->set_pattern("%v");  // the line carries the event's own time
    log_->set_level(spdlog::level::info);
    log_->flush_on(spdlog::level::off);  // flushed once per pass instead
    log_->set_error_handler([this](const std::string&) {
        write_errors_.store(write_errors_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
    });
}

EventLogger::~EventLogger() {
    try {
        stop();
    } catch (...) {
        // A destructor must not throw; stop() only fails if joining does.
    }
}

void EventLogger::start() {
    if (thread_.joinable()) throw std::logic_error("EventLogger: already started");
    {
        std::lock_guard lock(mutex_);
        if (stopping_) throw std::logic_error("EventLogger: already stopped");
    }
    thread_ = std::thread([this] { run(); });
}

void EventLogger::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    // The thread is gone: this is now the only consumer. Take everything left.
    while (drain_pass()) {
    }
}

uint64_t EventLogger::lost() const {
    uint64_t total = 0;
    for (const EventSink* s : sinks_) total += s->lost();
    return total;
}

void EventLogger::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        const bool more = drain_pass();
        lock.lock();
        if (!more) wake_.wait_for(lock, kInterval, [this] { return stopping_; });
    }
}

bool EventLogger::drain_pass() {
    NatEvent batch[kBatch];
    fmt::memory_buffer line;
    bool more = false;
    bool wrote = false;
    for (std::size_t i = 0; i < sinks_.size(); ++i) {
        EventSink& sink = *sinks_[i];
        unsigned taken = 0;
        while (taken < kPassBudget) {
            const unsigned n = sink.drain(batch, kBatch);
            if (n == 0) break;
            taken += n;
            // Read both clocks after the dequeue, so every event is older than "now".
            const uint32_t now = clock_.worker_now_ms();
            const auto wall = clock_.wall_now();
            for (unsigned k = 0; k < n; ++k) {
                const int32_t age = static_cast<int32_t>(now - batch[k].time_ms);
                const auto when = wall - std::chrono::milliseconds(age > 0 ? age : 0);
                line.clear();
                format_event_to(std::back_inserter(line), batch[k], when);
                write_line({line.data(), line.size()});
            }
            logged_.store(logged_.load(std::memory_order_relaxed) + n,
                          std::memory_order_relaxed);
            wrote = true;
        }
        if (taken >= kPassBudget) more = true;

        const uint64_t lost = sink.lost();
        if (lost != lost_reported_[i]) {
            line.clear();
            format_time_to(std::back_inserter(line), clock_.wall_now());
            fmt::format_to(std::back_inserter(line), " lost {} events worker {}",
                           lost - lost_reported_[i], sink.worker());
            write_line({line.data(), line.size()});
            lost_reported_[i] = lost;
            wrote = true;
        }
    }
    if (wrote) log_->flush();
    return more;
}

void EventLogger::write_line(std::string_view l) { log_->log(spdlog::level::info, l); }

std::string EventLogger::format_event(const NatEvent& e,
                                      std::chrono::system_clock::time_point when) {
    std::string out;
    format_event_to(std::back_inserter(out), e, when);
    return out;
}

std::string EventLogger::format_time(std::chrono::system_clock::time_point when) {
    std::string out;
    format_time_to(std::back_inserter(out), when);
    return out;
}

}  // namespace snatgw
