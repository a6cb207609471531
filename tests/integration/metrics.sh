#!/bin/bash
# Metrics of the running daemon: the Prometheus endpoint (in the gateway's namespace, on the
# loopback address of the lab config) answers /metrics with text that `promtool check metrics`
# accepts, whose counters follow the traffic this test makes (packets, sessions created, the
# ports in use per pool address); unknown paths are 404. The same figures as DPDK telemetry
# commands (/snatgw/...), read with dpdk-telemetry.py.
source "$(dirname "$0")/lib.sh"
[ "$SNL_GATEWAY" = snatgw ] || skip "the metrics endpoint is a snatgw feature"
lab_ensure

scrape() { in_ns gw curl -sf --max-time 5 "http://127.0.0.1:9469$1"; }
metric() {  # the value of one sample (name{labels} exactly as printed), 0 if absent
    awk -v m="$1" '$1 == m {print $2; found=1} END {if (!found) print 0}' "$2"
}

scrape /metrics > "$TEST_TMP/before.txt"
check "/metrics answers" [ -s "$TEST_TMP/before.txt" ]
if command -v promtool >/dev/null; then
    promtool check metrics < "$TEST_TMP/before.txt" > "$TEST_TMP/promtool.txt" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || sed 's/^/    promtool: /' "$TEST_TMP/promtool.txt" | head -20
    check "promtool check metrics accepts a live scrape" [ "$rc" -eq 0 ]
else
    fail "promtool is not installed (Debian package prometheus)"
fi
check "unknown paths are 404" bash -c "[ \"\$(ip netns exec snl-gw curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9469/nosuch)\" = 404 ]"

# Traffic: 30 UDP flows from h3.
in_ns h3 "$PY3" - "$SERVER" <<'PY'
import socket, sys
for i in range(30):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"metrics %d" % i, (sys.argv[1], 7007))
    s.recvfrom(2048)
    s.close()
PY
scrape /metrics > "$TEST_TMP/after.txt"
created0=$(metric 'snatgw_sessions_created_total{worker="0"}' "$TEST_TMP/before.txt")
created1=$(metric 'snatgw_sessions_created_total{worker="0"}' "$TEST_TMP/after.txt")
check "sessions created grew by at least the 30 flows ($created0 -> $created1)" [ $((${created1%.*} - ${created0%.*})) -ge 30 ]
udp=$(metric 'snatgw_sessions{proto="udp",state="active"}' "$TEST_TMP/after.txt")
check "the UDP sessions gauge counts them ($udp)" [ "${udp%.*}" -ge 30 ]
rx=$(grep -E '^snatgw_packets_total\{.*port="inside".*direction="rx"' "$TEST_TMP/after.txt" | awk '{s += $2} END {print s + 0}')
check "inside packets received are counted ($rx)" [ "${rx%.*}" -ge 30 ]
inuse=$(grep -E '^snatgw_ports_in_use\{.*proto="udp"' "$TEST_TMP/after.txt" | awk '{s += $2} END {print s + 0}')
check "UDP ports in use per pool address add up to the flows ($inuse)" [ "${inuse%.*}" -ge 30 ]
check "drops by reason are exported" grep -q '^snatgw_drops_total{reason="no_session"}' "$TEST_TMP/after.txt"

# Loop timing (issue 13): the pass time histogram and the longest RX poll gap of every worker,
# non-zero after the traffic; no worker failed.
passes=$(metric 'snatgw_worker_loop_pass_seconds_count{worker="0"}' "$TEST_TMP/after.txt")
inf=$(metric 'snatgw_worker_loop_pass_seconds_bucket{worker="0",le="+Inf"}' "$TEST_TMP/after.txt")
check "worker 0 counted loop passes ($passes), the +Inf bucket equals the count ($inf)" \
    [ "${passes%.*}" -gt 0 -a "$inf" = "$passes" ]
buckets=$(grep -c '^snatgw_worker_loop_pass_seconds_bucket{worker="0",' "$TEST_TMP/after.txt")
check "the pass time histogram has 16 buckets per worker ($buckets)" [ "$buckets" -eq 16 ]
pass_sum=$(metric 'snatgw_worker_loop_pass_seconds_sum{worker="0"}' "$TEST_TMP/after.txt")
check "the pass time sum is positive ($pass_sum s)" "$PY3" -c "import sys; sys.exit(0 if float('$pass_sum') > 0 else 1)"
gap=$(metric 'snatgw_worker_poll_gap_max_seconds{worker="0"}' "$TEST_TMP/after.txt")
check "the longest RX poll gap is positive ($gap s)" "$PY3" -c "import sys; sys.exit(0 if float('$gap') > 0 else 1)"
fatal=$(grep -E '^snatgw_worker_fatal_total\{' "$TEST_TMP/after.txt" | awk '{s += $2} END {print s + 0}')
check "no worker failed (snatgw_worker_fatal_total $fatal)" [ "$fatal" = 0 ]
ctl="$SNL_BUILD/tools/snatctl/snatctl"
if [ -x "$ctl" ]; then
    "$ctl" --socket "$SNL_DIR/snatgw.sock" --timeout 10 --json stats > "$TEST_TMP/stats.json"
    check "snatctl --json stats: loop passes, pass time, poll gap and histogram are there and non-zero" \
        "$PY3" - "$TEST_TMP/stats.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
w0, loop, h = d["workers"][0], d["loop"], d["loop_pass_time"]
ok = (w0["loop_passes"] > 0 and w0["poll_gap_max_ns"] > 0 and w0["worker_fatal"] == 0
      and loop["passes"] > 0 and loop["pass_time_ns"] > 0 and loop["poll_gap_max_ns"] > 0
      and loop["worker_fatal"] == 0 and len(h["bounds_us"]) == 15 and len(h["total"]) == 16
      and sum(h["total"]) > 0 and len(h["workers"]) == len(d["workers"]))
if not ok:
    print("    stats:", w0, loop, h)
sys.exit(0 if ok else 1)
PY
    "$ctl" --socket "$SNL_DIR/snatgw.sock" --timeout 10 stats > "$TEST_TMP/stats.txt"
    check "snatctl stats shows the loop pass times" grep -q '^loop pass times' "$TEST_TMP/stats.txt"
else
    fail "snatctl is not built ($ctl)"
fi

if command -v dpdk-telemetry.py >/dev/null; then
    echo /snatgw/stats | timeout 10 dpdk-telemetry.py -f snl > "$TEST_TMP/telemetry.txt" 2>&1
    say "telemetry: $(head -c 300 "$TEST_TMP/telemetry.txt")..."
    check "dpdk-telemetry.py /snatgw/stats gives the same sessions created" "$PY3" - "$TEST_TMP/telemetry.txt" "${created1%.*}" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
start = text.index('{"/snatgw/stats"')
d = json.JSONDecoder().raw_decode(text[start:])[0]["/snatgw/stats"]
sys.exit(0 if d["new"] >= int(sys.argv[2]) else 1)
PY
    check "dpdk-telemetry.py /snatgw/stats has the loop timing" "$PY3" - "$TEST_TMP/telemetry.txt" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
start = text.index('{"/snatgw/stats"')
d = json.JSONDecoder().raw_decode(text[start:])[0]["/snatgw/stats"]
sys.exit(0 if d["loop_passes"] > 0 and d["loop_poll_gap_max_ns"] > 0 and sum(d["loop_pass_buckets"]) > 0
         and d["loop_worker_fatal"] == 0 else 1)
PY
    echo /snatgw/drops | timeout 10 dpdk-telemetry.py -f snl > "$TEST_TMP/telemetry_drops.txt" 2>&1
    check "dpdk-telemetry.py /snatgw/drops answers" grep -q '"/snatgw/drops"' "$TEST_TMP/telemetry_drops.txt"
else
    fail "dpdk-telemetry.py is not installed (Debian package dpdk-dev)"
fi
finish
