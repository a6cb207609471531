// Tests the NAT event log: the worker-side sink (dataplane/nat_event.h: staging, burst enqueue,
// losses when the ring is full) and the logger thread (control/event_logger.h: exact lines in a
// rotating file, wall-clock dating from the worker clock, stop drains everything, the "lost"
// line, validation of the [events] options).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "config_builder.h"
#include "event_logger.h"
#include "nat_event.h"
#include "packet_view.h"

namespace snatgw::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

// DPDK ring names are process-wide: one per sink.
std::string ring_name() {
    static int n = 0;
    return "evt_test_" + std::to_string(n++);
}

Session session(uint8_t proto, const char* in, uint16_t in_port, const char* out,
                uint16_t out_port, const char* remote, uint16_t remote_port) {
    Session s{};
    s.proto = proto;
    s.inside_addr = htonl(parse_ipv4(in));
    s.outside_addr = htonl(parse_ipv4(out));
    s.remote_addr = htonl(parse_ipv4(remote));
    s.inside_port = htons(in_port);
    s.outside_port = htons(out_port);
    s.remote_port = htons(remote_port);
    return s;
}

const Session kTcp = session(kProtoTcp, "198.18.0.11", 40000, "198.19.0.10", 1026, "198.19.0.2", 80);
const Session kUdp = session(kProtoUdp, "198.18.0.12", 5353, "198.19.0.11", 2049, "198.19.0.3", 53);
const Session kIcmp = session(kProtoIcmp, "198.18.0.11", 4660, "198.19.0.10", 1027, "198.19.0.2", 0);

// 2026-11-22T02:30:00.123Z
const system_clock::time_point kWall =
    sys_days{year{2026} / 11 / 22} + hours{2} + minutes{30} + milliseconds{123};

class TempDir {
public:
    TempDir() {
        static int counter = 0;
        dir_ = fs::temp_directory_path() /
               ("snatgw-events-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(dir_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    const fs::path& path() const { return dir_; }

private:
    fs::path dir_;
};

std::vector<std::string> read_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

// A worker clock the test sets by hand, and a fixed wall clock.
struct FakeClock {
    std::atomic<uint32_t> worker_ms{0};
    EventClock clock() {
        return {[this] { return worker_ms.load(); }, [] { return kWall; }};
    }
};

EventLogConfig file_config(const fs::path& file, uint32_t ring = 1024) {
    EventLogConfig c;
    c.enabled = true;
    c.target = "file:" + file.string();
    c.ring = ring;
    return c;
}

// ---- the sink ----

TEST(EventLogSink, EmitFlushDrainRoundTrip) {
    EventSink sink(ring_name(), 64, 3, SOCKET_ID_ANY);
    EXPECT_EQ(sink.capacity(), 63u);
    sink.created(kTcp, 1000);
    sink.deleted(kUdp, DeleteReason::Evicted, 2000);
    sink.emit(make_event(kIcmp, EventType::Deleted, DeleteReason::Expired, 3000, 7));

    NatEvent out[8];
    EXPECT_EQ(sink.drain(out, 8), 0u) << "events stay staged until flush";
    EXPECT_EQ(sink.emitted(), 3u);
    sink.flush();
    ASSERT_EQ(sink.drain(out, 8), 3u);
    EXPECT_EQ(sink.drain(out + 3, 5), 0u);

    EXPECT_EQ(out[0].type, EventType::Created);
    EXPECT_EQ(out[0].reason, DeleteReason::None);
    EXPECT_EQ(out[0].time_ms, 1000u);
    EXPECT_EQ(out[0].worker, 3);
    EXPECT_EQ(out[0].proto, kProtoTcp);
    EXPECT_EQ(out[0].inside_addr, kTcp.inside_addr);
    EXPECT_EQ(out[0].outside_addr, kTcp.outside_addr);
    EXPECT_EQ(out[0].remote_addr, kTcp.remote_addr);
    EXPECT_EQ(ntohs(out[0].inside_port), 40000);
    EXPECT_EQ(ntohs(out[0].outside_port), 1026);
    EXPECT_EQ(ntohs(out[0].remote_port), 80);

    EXPECT_EQ(out[1].type, EventType::Deleted);
    EXPECT_EQ(out[1].reason, DeleteReason::Evicted);
    EXPECT_EQ(out[1].proto, kProtoUdp);
    EXPECT_EQ(ntohs(out[1].outside_port), 2049);
    EXPECT_EQ(out[1].time_ms, 2000u);

    EXPECT_EQ(out[2].reason, DeleteReason::Expired);
    EXPECT_EQ(out[2].worker, 7);
    EXPECT_EQ(sink.lost(), 0u);
}

TEST(EventLogSink, FullStageFlushesByItself) {
    EventSink sink(ring_name(), 128, 0, SOCKET_ID_ANY);
    for (uint32_t i = 0; i < EventSink::kStage - 1; ++i) sink.created(kTcp, i);
    NatEvent out[64];
    EXPECT_EQ(sink.drain(out, 64), 0u);
    sink.created(kTcp, 99);  // the kStage-th event
    ASSERT_EQ(sink.drain(out, 64), EventSink::kStage);
    for (uint32_t i = 0; i < EventSink::kStage - 1; ++i) EXPECT_EQ(out[i].time_ms, i);
    EXPECT_EQ(out[EventSink::kStage - 1].time_ms, 99u);
}

TEST(EventLogSink, RingFullCountsLossesAndNeverBlocks) {
    EventSink sink(ring_name(), 64, 0, SOCKET_ID_ANY);
    const auto t0 = steady_clock::now();
    constexpr uint32_t kEmits = 100000;
    for (uint32_t i = 0; i < kEmits; ++i) sink.created(kTcp, i);
    sink.flush();
    // A blocking or retrying emit would hang here with nobody draining.
    EXPECT_LT(steady_clock::now() - t0, seconds{2});

    EXPECT_EQ(sink.emitted(), kEmits);
    EXPECT_EQ(sink.lost(), kEmits - 63);
    NatEvent out[128];
    ASSERT_EQ(sink.drain(out, 128), 63u);
    for (uint32_t i = 0; i < 63; ++i) EXPECT_EQ(out[i].time_ms, i) << "the oldest events are kept";

    // Room again: later events go through.
    sink.created(kTcp, 7);
    sink.flush();
    ASSERT_EQ(sink.drain(out, 128), 1u);
    EXPECT_EQ(out[0].time_ms, 7u);
    EXPECT_EQ(sink.lost(), kEmits - 63);
}

TEST(EventLogSink, RejectsRingSizeNotPowerOfTwo) {
    EXPECT_THROW(EventSink(ring_name(), 1000, 0, SOCKET_ID_ANY), std::invalid_argument);
    EXPECT_THROW(EventSink(ring_name(), 0, 0, SOCKET_ID_ANY), std::invalid_argument);
}

// ---- the lines ----

TEST(EventLogFormat, Lines) {
    EXPECT_EQ(EventLogger::format_time(kWall), "2026-11-22T02:30:00.123Z");
    EXPECT_EQ(EventLogger::format_time(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");

    EXPECT_EQ(EventLogger::format_event(
                  make_event(kTcp, EventType::Created, DeleteReason::None, 0, 0), kWall),
              "2026-11-22T02:30:00.123Z create tcp inside 198.18.0.11:40000 outside "
              "198.19.0.10:1026 remote 198.19.0.2:80 worker 0");
    EXPECT_EQ(EventLogger::format_event(
                  make_event(kUdp, EventType::Deleted, DeleteReason::Flushed, 0, 12), kWall),
              "2026-11-22T02:30:00.123Z delete udp inside 198.18.0.12:5353 outside "
              "198.19.0.11:2049 remote 198.19.0.3:53 reason flushed worker 12");
    EXPECT_EQ(EventLogger::format_event(
                  make_event(kIcmp, EventType::Deleted, DeleteReason::Expired, 0, 1), kWall),
              "2026-11-22T02:30:00.123Z delete icmp inside 198.18.0.11 id 4660 outside "
              "198.19.0.10 id 1027 remote 198.19.0.2 reason expired worker 1");
    Session gre = kTcp;
    gre.proto = 47;
    EXPECT_EQ(EventLogger::format_event(
                  make_event(gre, EventType::Created, DeleteReason::None, 0, 0), kWall),
              "2026-11-22T02:30:00.123Z create proto 47 inside 198.18.0.11:40000 outside "
              "198.19.0.10:1026 remote 198.19.0.2:80 worker 0");
}

TEST(EventLogFormat, EveryReasonHasAName) {
    const char* expected[] = {"none", "expired", "closed", "evicted", "flushed", "reopened",
                              "shutdown", "reused", "reclaimed"};
    static_assert(std::size(expected) == kDeleteReasons);
    for (int r = 0; r < kDeleteReasons; ++r)
        EXPECT_STREQ(delete_reason_name(static_cast<DeleteReason>(r)), expected[r]);
    EXPECT_STREQ(event_type_name(EventType::Created), "create");
    EXPECT_STREQ(event_type_name(EventType::Deleted), "delete");
}

// ---- the logger ----

TEST(EventLogLogger, ThreadWritesExactLinesDatedByTheWorkerClock) {
    TempDir dir;
    const fs::path file = dir.path() / "sub" / "events.log";  // the directory does not exist yet
    EventSink w0(ring_name(), 1024, 0, SOCKET_ID_ANY);
    EventSink w1(ring_name(), 1024, 1, SOCKET_ID_ANY);
    FakeClock fake;
    fake.worker_ms = 100000;
    EventLogger logger(file_config(file), {&w0, &w1}, fake.clock());
    EXPECT_TRUE(fs::is_directory(file.parent_path()));
    logger.start();

    // Worker clock now 100000 and wall clock kWall: an event at 98500 happened 1.5 s before.
    w0.created(kTcp, 98500);
    w0.deleted(kTcp, DeleteReason::Expired, 100000);
    w0.flush();
    const auto deadline = steady_clock::now() + seconds{5};
    while (logger.logged() < 2 && steady_clock::now() < deadline)
        std::this_thread::sleep_for(milliseconds{5});
    ASSERT_EQ(logger.logged(), 2u) << "the thread drains without being stopped";

    // Across the 32-bit wrap of the worker clock: 0xffffff00 is 256 ms before 0, so 1256 ms
    // before a clock reading 1000.
    fake.worker_ms = 1000;
    w1.emit(make_event(kIcmp, EventType::Created, DeleteReason::None, 0xffffff00u, 1));
    w1.flush();
    logger.stop();
    EXPECT_EQ(logger.logged(), 3u);
    EXPECT_EQ(logger.lost(), 0u);
    EXPECT_EQ(logger.write_errors(), 0u);

    const std::vector<std::string> lines = read_lines(file);
    const std::vector<std::string> expected = {
        "2026-11-22T02:29:58.623Z create tcp inside 198.18.0.11:40000 outside 198.19.0.10:1026 "
        "remote 198.19.0.2:80 worker 0",
        "2026-11-22T02:30:00.123Z delete tcp inside 198.18.0.11:40000 outside 198.19.0.10:1026 "
        "remote 198.19.0.2:80 reason expired worker 0",
        "2026-11-22T02:29:58.867Z create icmp inside 198.18.0.11 id 4660 outside 198.19.0.10 "
        "id 1027 remote 198.19.0.2 worker 1",
    };
    EXPECT_EQ(lines, expected);
}

TEST(EventLogLogger, StopDrainsEverything) {
    TempDir dir;
    const fs::path file = dir.path() / "events.log";
    EventSink w0(ring_name(), 4096, 0, SOCKET_ID_ANY);
    EventSink w1(ring_name(), 4096, 1, SOCKET_ID_ANY);
    FakeClock fake;
    fake.worker_ms = 5000;
    EventLogger logger(file_config(file, 4096), {&w0, &w1}, fake.clock());
    logger.start();
    // Emitted while the thread runs, and right before stop: nothing may be left behind.
    for (uint32_t i = 0; i < 3000; ++i) {
        w0.created(kTcp, i);
        w1.deleted(kUdp, DeleteReason::Closed, i);
    }
    w0.flush();
    w1.flush();
    logger.stop();
    EXPECT_EQ(logger.logged(), 6000u);
    const std::vector<std::string> lines = read_lines(file);
    ASSERT_EQ(lines.size(), 6000u);
    std::size_t creates = 0, deletes = 0;
    for (const std::string& l : lines) {
        if (l.find(" create tcp ") != std::string::npos && l.ends_with(" worker 0")) ++creates;
        if (l.find(" reason closed worker 1") != std::string::npos) ++deletes;
    }
    EXPECT_EQ(creates, 3000u);
    EXPECT_EQ(deletes, 3000u);
    logger.stop();  // idempotent
    EXPECT_EQ(read_lines(file).size(), 6000u);
}

TEST(EventLogLogger, LossesAreCountedAndWrittenAsALine) {
    TempDir dir;
    const fs::path file = dir.path() / "events.log";
    EventSink sink(ring_name(), 64, 3, SOCKET_ID_ANY);
    FakeClock fake;
    EventLogger logger(file_config(file, 64), {&sink}, fake.clock());
    for (uint32_t i = 0; i < 100; ++i) sink.created(kTcp, 0);
    sink.flush();
    EXPECT_EQ(logger.lost(), 37u);
    logger.stop();  // never started: stop alone drains
    EXPECT_EQ(logger.logged(), 63u);
    const std::vector<std::string> lines = read_lines(file);
    ASSERT_EQ(lines.size(), 64u);
    EXPECT_EQ(lines.back(), "2026-11-22T02:30:00.123Z lost 37 events worker 3");
}

TEST(EventLogLogger, RotatesFiles) {
    TempDir dir;
    const fs::path file = dir.path() / "events.log";
    EventLogConfig c = file_config(file, 16384);
    c.max_size_mb = 1;
    c.max_files = 2;
    EventSink sink(ring_name(), 16384, 0, SOCKET_ID_ANY);
    FakeClock fake;
    EventLogger logger(c, {&sink}, fake.clock());
    // About 110 bytes a line: 12000 lines pass 1 MiB once.
    for (uint32_t i = 0; i < 12000; ++i) sink.created(kTcp, 0);
    sink.flush();
    logger.stop();
    ASSERT_TRUE(fs::exists(dir.path() / "events.1.log"));
    EXPECT_LE(fs::file_size(dir.path() / "events.1.log"), 1u << 20);
    EXPECT_EQ(read_lines(file).size() + read_lines(dir.path() / "events.1.log").size(), 12000u);
}

TEST(EventLogLogger, UnopenableTargetIsAConfigError) {
    EventSink sink(ring_name(), 64, 0, SOCKET_ID_ANY);
    FakeClock fake;
    EventLogConfig c;
    c.target = "file:/proc/snatgw-no-such-dir/events.log";
    try {
        EventLogger logger(c, {&sink}, fake.clock());
        FAIL() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("events.target: cannot create directory"),
                  std::string::npos)
            << e.what();
    }
}

// ---- the [events] options ----

std::string error_of(const EventLogConfig& c) {
    try {
        validate_event_log_config(c);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(EventLogConfig, DefaultsAndGoodValuesPass) {
    EXPECT_EQ(error_of(EventLogConfig{}), "");
    EventLogConfig c;
    c.target = "syslog";
    c.ring = kEventRingMin;
    c.max_files = 1;
    c.max_size_mb = 1;
    EXPECT_EQ(error_of(c), "");
    EXPECT_TRUE(parse_event_target("syslog").syslog);
    const EventTarget t = parse_event_target("file:/var/log/snatgw/events.log");
    EXPECT_FALSE(t.syslog);
    EXPECT_EQ(t.path, "/var/log/snatgw/events.log");
}

TEST(EventLogConfig, BadValuesAreRejectedWithTheOptionNamed) {
    struct Case {
        void (*change)(EventLogConfig&);
        const char* message;
    };
    const Case cases[] = {
        {[](EventLogConfig& c) { c.target = "syslog:local0"; },
         "events.target: 'syslog:local0' is neither 'syslog' nor 'file:/absolute/path'"},
        {[](EventLogConfig& c) { c.target = "/var/log/events.log"; }, "is neither 'syslog'"},
        {[](EventLogConfig& c) { c.target = "file:events.log"; }, "must be an absolute path"},
        {[](EventLogConfig& c) { c.target = "file:"; }, "must be an absolute path"},
        {[](EventLogConfig& c) { c.target = "file:/var/log/"; }, "names a directory"},
        {[](EventLogConfig& c) { c.ring = 1000; },
         "events.ring: 1000 must be a power of two from 64 to 4194304"},
        {[](EventLogConfig& c) { c.ring = 32; }, "events.ring: 32 must be"},
        {[](EventLogConfig& c) { c.ring = 1u << 23; }, "events.ring: 8388608 must be"},
        {[](EventLogConfig& c) { c.max_size_mb = 0; },
         "events.max_size_mb: 0 is out of range (1 .. 1048576)"},
        {[](EventLogConfig& c) { c.max_files = 0; }, "events.max_files: 0 is out of range"},
        {[](EventLogConfig& c) { c.max_files = 1001; }, "events.max_files: 1001 is out of range"},
    };
    for (const Case& k : cases) {
        EventLogConfig c;
        k.change(c);
        const std::string msg = error_of(c);
        EXPECT_NE(msg.find(k.message), std::string::npos)
            << "got \"" << msg << "\", expected it to contain \"" << k.message << "\"";
    }
    // The logger refuses what validation refuses, before touching the target.
    EventSink sink(ring_name(), 64, 0, SOCKET_ID_ANY);
    FakeClock fake;
    EventLogConfig bad;
    bad.ring = 100;
    EXPECT_THROW(EventLogger(bad, {&sink}, fake.clock()), ConfigError);
    EXPECT_THROW(EventLogger(EventLogConfig{}, {nullptr}, fake.clock()), std::invalid_argument);
}

}  // namespace
}  // namespace snatgw::test
