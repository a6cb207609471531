// DPDK telemetry commands; see telemetry.h.
#include "telemetry.h"

#include <rte_telemetry.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <stdexcept>

namespace snatgw {

namespace {

// Guards the provider, and serialises its calls with its reset.
std::mutex provider_mutex;
StatsProvider provider;
bool registered = false;

// An array of objects (all with the same keys) -> one array per key, in `keys` order.
nlohmann::json columns(const nlohmann::json& rows, std::initializer_list<const char*> keys) {
    nlohmann::json out = nlohmann::json::object();
    for (const char* k : keys) {
        nlohmann::json col = nlohmann::json::array();
        for (const auto& row : rows) col.push_back(row.at(k));
        out[k] = std::move(col);
    }
    return out;
}

nlohmann::json flatten(const nlohmann::json& obj, const std::string& prefix) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : obj.items()) out[prefix + k] = v;
    return out;
}

bool valid_name(const std::string& n) {
    if (n.empty() || n.size() >= RTE_TEL_MAX_STRING_LEN) return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '/') return false;
    return true;
}

bool fits_string(const nlohmann::json& v) {
    return v.get_ref<const std::string&>().size() < RTE_TEL_MAX_STRING_LEN;
}

// Whether DPDK will take `obj` whole. Checked before anything is added: DPDK frees the arrays of
// a reply only once it sends it, so a reply abandoned half-built would leak them.
bool fits(const nlohmann::json& obj) {
    if (!obj.is_object() || obj.size() > RTE_TEL_MAX_DICT_ENTRIES) return false;
    for (const auto& [name, v] : obj.items()) {
        if (!valid_name(name)) return false;
        if (v.is_string() && !fits_string(v)) return false;
        if (v.is_array()) {
            if (v.size() > RTE_TEL_MAX_ARRAY_ENTRIES) return false;
            const bool strings = !v.empty() && v.front().is_string();
            for (const auto& e : v)
                if (strings ? !e.is_string() || !fits_string(e) : !e.is_number_unsigned())
                    return false;
        } else if (!v.is_string() && !v.is_number_unsigned()) {
            return false;
        }
    }
    return true;
}

// Fills a fresh rte_tel_data with a flat JSON object (numbers, strings, arrays of either).
int fill(rte_tel_data* d, const nlohmann::json& obj) {
    if (!fits(obj)) return -E2BIG;
    int rc = rte_tel_data_start_dict(d);
    for (auto it = obj.begin(); rc == 0 && it != obj.end(); ++it) {
        const std::string& name = it.key();
        const nlohmann::json& v = it.value();
        if (v.is_string()) {
            rc = rte_tel_data_add_dict_string(d, name.c_str(), v.get_ref<const std::string&>().c_str());
        } else if (v.is_number_unsigned()) {
            rc = rte_tel_data_add_dict_u64(d, name.c_str(), v.get<uint64_t>());
        } else if (v.is_array()) {
            const bool strings = !v.empty() && v.front().is_string();
            rte_tel_data* a = rte_tel_data_alloc();
            if (a == nullptr) return -ENOMEM;
            rc = rte_tel_data_start_array(a, strings ? RTE_TEL_STRING_VAL : RTE_TEL_U64_VAL);
            for (auto e = v.begin(); rc == 0 && e != v.end(); ++e)
                rc = strings ? rte_tel_data_add_array_string(
                                   a, e->get_ref<const std::string&>().c_str())
                             : rte_tel_data_add_array_u64(a, e->get<uint64_t>());
            if (rc == 0) rc = rte_tel_data_add_dict_container(d, name.c_str(), a, 0);
            if (rc != 0) rte_tel_data_free(a);
        } else {
            rc = -EINVAL;
        }
    }
    return rc;
}

}  // namespace

nlohmann::json telemetry_dict(std::string_view command, const StatsSnapshot& s) {
    using nlohmann::json;
    const json j = stats_to_json(s);
    if (command == "/snatgw/stats") {
        json out = j["total"];
        out["workers"] = s.workers.size();
        out["uptime_s"] = static_cast<uint64_t>(s.uptime_s);
        out["steering_inside"] = j["steering"]["inside"];
        out["steering_outside"] = j["steering"]["outside"];
        out.update(flatten(j["loop"], "loop_"));
        // The pass time histogram (buckets: see loop_pass_bounds_us; the last is the rest).
        out["loop_pass_buckets"] = j["loop_pass_time"]["total"];
        out["loop_pass_bounds_us"] = j["loop_pass_time"]["bounds_us"];
        out.update(flatten(j["control"], "control_"));
        out.update(flatten(j["events"], "events_"));
        return out;
    }
    if (command == "/snatgw/workers")
        return columns(j["workers"],
                       {"worker", "rx_inside", "rx_outside", "tx_inside", "tx_outside", "found",
                        "new", "reopened", "translated", "handoffs", "handoff_ring_full",
                        "insert_failed", "expired", "evicted", "flushed", "drops", "sessions",
                        "session_capacity", "worker_fatal", "loop_passes", "poll_gap_max_ns"});
    if (command == "/snatgw/drops") return j["drops"];
    if (command == "/snatgw/sessions") {
        json out = flatten(j["sessions_by_state"]["tcp"], "tcp_");
        out["udp"] = j["sessions_by_state"]["udp"];
        out["icmp"] = j["sessions_by_state"]["icmp"];
        return out;
    }
    if (command == "/snatgw/ports_in_use")
        return columns(j["ports_in_use"],
                       {"pool", "address", "tcp", "udp", "icmp", "per_protocol_capacity"});
    if (command == "/snatgw/ports") {
        json out = json::object();
        for (const auto& [side, counters] : j["ports"].items())
            out.update(flatten(counters, side + "_"));
        return out;
    }
    return nullptr;
}

int telemetry_callback(const char* cmd, const char* /*params*/, rte_tel_data* d) {
    // Called from DPDK's C thread: nothing may escape.
    try {
        if (std::find(kTelemetryCommands.begin(), kTelemetryCommands.end(), cmd) ==
            kTelemetryCommands.end())
            return -EINVAL;
        nlohmann::json dict;
        {
            std::lock_guard lock(provider_mutex);
            if (!provider) return -ENODEV;
            dict = telemetry_dict(cmd, provider());
        }
        return fill(d, dict);
    } catch (...) {
        return -EIO;
    }
}

void register_telemetry(StatsProvider p) {
    std::lock_guard lock(provider_mutex);
    provider = std::move(p);
    if (registered) return;
    static const char* const kHelp[kTelemetryCommands.size()] = {
        "snatgw totals: worker counters summed, sessions, loop, control, events. No parameters",
        "snatgw per-worker counters, one array entry per worker. No parameters",
        "snatgw packets dropped by reason. No parameters",
        "snatgw live sessions by protocol and TCP state. No parameters",
        "snatgw public ports in use per pool address and protocol. No parameters",
        "snatgw DPDK port counters, inside and outside. No parameters",
    };
    for (std::size_t i = 0; i < kTelemetryCommands.size(); ++i) {
        const std::string cmd(kTelemetryCommands[i]);
        if (int rc = rte_telemetry_register_cmd(cmd.c_str(), telemetry_callback, kHelp[i]);
            rc != 0)
            throw std::runtime_error("telemetry: cannot register " + cmd + ": error " +
                                     std::to_string(rc));
    }
    registered = true;
}

void reset_telemetry_provider() {
    std::lock_guard lock(provider_mutex);
    provider = nullptr;
}

}  // namespace snatgw
