// The NAT event log (for abuse tracing): one thread that drains every worker's EventSink
// (dataplane/nat_event.h) about every 20 ms and writes one line per session creation or deletion
// through spdlog, to rotating files or to syslog (facility daemon):
//
//   2026-11-22T02:30:00.123Z create tcp inside 198.18.0.11:40000 outside 198.19.0.10:1026 remote 198.19.0.2:80 worker 0
//   2026-11-22T02:32:00.456Z delete tcp inside 198.18.0.11:40000 outside 198.19.0.10:1026 remote 198.19.0.2:80 reason expired worker 0
//   2026-11-22T02:30:01.000Z create icmp inside 198.18.0.11 id 4660 outside 198.19.0.10 id 1026 remote 198.19.0.2 worker 1
//   2026-11-22T02:30:02.000Z lost 17 events worker 1
//
// Times are UTC wall-clock times of the events. Workers stamp events with their own clock (ms
// since they started, 32 bits); on each pass the logger reads that clock and the wall clock
// together and dates every event by its age, so a wall-clock step (NTP after boot) applies from
// the next pass on and the 49-day wrap of the worker clock does not matter. Lines of different
// workers are not merged in time order. When a worker's ring overflowed, a "lost" line says how
// many events are missing from that worker and when the logger noticed.
//
// Control path: validation and set-up throw ConfigError; the thread itself never throws
// (spdlog write errors are counted).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config_builder.h"  // ConfigError

namespace spdlog {
class logger;
}

namespace snatgw {

class EventSink;
struct NatEvent;

// The [events] section.
struct EventLogConfig {
    bool enabled = false;
    std::string target = "file:/var/log/snatgw/events.log";  // or "syslog"
    uint32_t max_size_mb = 100;  // file: rotate when the current file reaches this size
    uint32_t max_files = 5;      // file: rotated files kept besides the current one
    uint32_t ring = 65536;       // events per worker ring (power of two; holds ring - 1)
    bool operator==(const EventLogConfig&) const = default;
};

inline constexpr uint32_t kEventRingMin = 64;
inline constexpr uint32_t kEventRingMax = 1u << 22;  // 128 MiB per worker
inline constexpr uint32_t kEventMaxSizeMbMax = 1u << 20;
inline constexpr uint32_t kEventMaxFilesMax = 1000;

struct EventTarget {
    bool syslog = false;
    std::string path;  // file: the log file (absolute)
};

// "syslog" or "file:/absolute/path". Throws ConfigError ("events.target: ...").
EventTarget parse_event_target(std::string_view target);

// Checks every field (whether or not the log is enabled). Throws ConfigError naming the option
// as "events.<option>: <problem>".
void validate_event_log_config(const EventLogConfig& c);

// How the logger dates events. worker_now_ms must return what the workers use as now_ms (same
// start, same units), e.g. [&] { return uint32_t((rte_rdtsc() - start_tsc) / tsc_per_ms); }.
struct EventClock {
    std::function<uint32_t()> worker_now_ms;
    std::function<std::chrono::system_clock::time_point()> wall_now = [] {
        return std::chrono::system_clock::now();
    };
};

class EventLogger {
public:
    static constexpr std::chrono::milliseconds kInterval{20};  // between drain passes
    static constexpr unsigned kPassBudget = 16384;  // events per sink per pass (then next pass)

    // Validates `config` and opens the target (creating the log file's directory). `sinks`
    // (one per worker, none null) must outlive the logger. Does not start the thread.
    // Throws ConfigError on a bad configuration or a target that cannot be opened.
    EventLogger(const EventLogConfig& config, std::vector<EventSink*> sinks, EventClock clock);
    ~EventLogger();  // stop()
    EventLogger(const EventLogger&) = delete;
    EventLogger& operator=(const EventLogger&) = delete;

    void start();
    // Stops the thread, then writes whatever the rings still hold and flushes the target. Call
    // after the workers have stopped and flushed their sinks, before the sinks are destroyed.
    // Idempotent; also valid without start() (one final drain).
    void stop();

    // Readable from any thread.
    uint64_t logged() const { return logged_.load(std::memory_order_relaxed); }  // event lines
    uint64_t lost() const;  // sum of the sinks' lost (ring full)
    uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

    // One event's line, dated `when` (exposed for tests and tools).
    static std::string format_event(const NatEvent& e, std::chrono::system_clock::time_point when);
    static std::string format_time(std::chrono::system_clock::time_point when);

private:
    void run();
    bool drain_pass();  // true when a sink had more than kPassBudget events waiting
    void write_line(std::string_view line);

    std::vector<EventSink*> sinks_;
    std::vector<uint64_t> lost_reported_;  // per sink: lost count already written as a line
    EventClock clock_;
    std::shared_ptr<spdlog::logger> log_;
    std::atomic<uint64_t> logged_{0};
    std::atomic<uint64_t> write_errors_{0};

    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;  // guarded by mutex_
    std::thread thread_;
};

}  // namespace snatgw
