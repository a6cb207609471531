#!/bin/bash
# Live configuration changes under traffic (invariant I6). While a bounded load runs through the
# gateway - two long-lived TCP connections exchanging verified data (h1, h2), an iperf3 upload
# (h3) and a light connect storm (h4) - snatctl changes the configuration over and over: adds
# and removes pool addresses (a removed address drains), switches the TCP policy, changes
# timeouts, adds a second pool that takes h4's new connections and deletes it again. Passes when
#   - every change was accepted and the daemon is alive at the end,
#   - no established connection broke: each long connection got back exactly what it sent,
#     iperf3 finished without error, the storm had no failed connect,
#   - the second pool was really used (the NAT event log has sessions on its addresses), and
#     the pools read back as configured at the end.
# Knob: SNL_LIVE_SECONDS (20).
source "$(dirname "$0")/lib.sh"
[ "$SNL_GATEWAY" = snatgw ] || skip "live configuration changes are a snatgw feature"
lab_ensure

seconds="${SNL_LIVE_SECONDS:-20}"
ctl="$SNL_BUILD/tools/snatctl/snatctl"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
snatctl() { "$ctl" --socket "$SNL_DIR/snatgw.sock" --timeout 10 "$@"; }
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
events_log="$SNL_DIR/events.log"

# A long-lived connection to the lab's TCP echo service: 2 KB of random bytes every 20 ms, each
# answer compared with what was sent. Prints one JSON line.
long_connection() {
    in_ns "$1" "$PY3" - "$SERVER" "$seconds" <<'PY'
import json, os, socket, sys, time
server, seconds = sys.argv[1], float(sys.argv[2])
out = {"ok": False, "rounds": 0, "peer": None, "error": None}
try:
    s = socket.create_connection((server, 7100), timeout=5)
    f = s.makefile("rb")
    out["peer"] = f.readline().decode().split()[1]
    end = time.time() + seconds
    while time.time() < end:
        data = os.urandom(2048)
        s.sendall(data)
        back = f.read(len(data))
        if back != data:
            raise RuntimeError(f"round {out['rounds']}: echo differs ({len(back)} bytes back)")
        out["rounds"] += 1
        time.sleep(0.02)
    s.close()
    out["ok"] = True
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
PY
}

say "load for $seconds s: long connections from h1 and h2, iperf3 from h3, a light storm from h4"
long_connection h1 > "$TEST_TMP/long1.json" & pids=($!)
long_connection h2 > "$TEST_TMP/long2.json" & pids+=($!)
in_ns h3 timeout $((seconds + 15)) iperf3 -c "$SERVER" -t "$seconds" -J > "$TEST_TMP/iperf3.json" 2>&1 & pids+=($!)
in_ns h4 "$client" --target "$SERVER:7100" --threads 4 --duration "$seconds" --pause-ms 5 --json \
    > "$TEST_TMP/storm.json" 2> "$TEST_TMP/storm.err" & pids+=($!)
sleep 1

# The changes, in a loop until the load ends (each one must be accepted).
changes=(
    "pool set lab --add 198.19.0.12"
    "policy set lab strict"
    "timeouts set lab tcp_established=3600 udp=60"
    "pool add extra --addresses 198.19.0.20-198.19.0.21 --rule 198.18.0.14/32 --policy retrans-ok"
    "pool set lab --del 198.19.0.10"
    "policy set lab retrans-ok"
    "pool set lab --add 198.19.0.10"
    "pool del extra"
    "pool set lab --del 198.19.0.12"
    "policy set lab liberal"
    "timeouts set lab tcp_established=7440 udp=120"
)
applied=0 refused=0
end=$((SECONDS + seconds - 2))
while [ "$SECONDS" -lt "$end" ]; do
    for c in "${changes[@]}"; do
        # shellcheck disable=SC2086  # a change is a list of words
        if snatctl $c > "$TEST_TMP/change.out" 2>&1; then
            applied=$((applied + 1))
        else
            refused=$((refused + 1))
            say "refused: snatctl $c: $(cat "$TEST_TMP/change.out")"
        fi
        sleep 0.25
    done
done
for p in "${pids[@]}"; do wait "$p"; done
say "changes applied: $applied, refused: $refused"
check "every configuration change was accepted ($applied applied)" [ "$refused" -eq 0 -a "$applied" -ge "${#changes[@]}" ]

for i in 1 2; do
    r=$(cat "$TEST_TMP/long$i.json")
    say "long connection $i: $r"
    check "long connection $i kept working through the changes" \
        "$PY3" -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["ok"] and r["rounds"] > 10 else 1)' "$r"
done
read -r err sent <<<"$("$PY3" - "$TEST_TMP/iperf3.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print(r.get("error", "-").replace(" ", "_"), r["end"]["sum_sent"]["bytes"] if "end" in r else 0)
except Exception as e:
    print("unparsable", 0)
PY
)"
say "iperf3: error ${err}, $sent bytes sent"
check "iperf3 ran through the changes without error" [ "$err" = "-" -a "${sent:-0}" -gt 0 ]
read -r ok failed <<<"$("$PY3" -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(r["connects_ok"], r["connects_failed"])' "$TEST_TMP/storm.json" 2>/dev/null || echo "0 -1")"
say "storm from h4: $ok connects, $failed failed"
check "the storm made connections and none failed" [ "${ok:-0}" -gt 0 -a "${failed:--1}" -eq 0 ]

check "the daemon is alive and answers" snatctl version
extra_sessions=$(grep -c 'create .* outside 198\.19\.0\.2[01]' "$events_log" 2>/dev/null || echo 0)
say "sessions on the second pool's addresses (event log): $extra_sessions"
check "the second pool took new sessions while it existed" [ "$extra_sessions" -gt 0 ]
snatctl --json pools > "$TEST_TMP/pools.json"
check "the pools read back as configured (lab: 198.19.0.10-11, liberal; no pool 'extra')" "$PY3" - "$TEST_TMP/pools.json" <<'PY'
import json, sys
pools = {p["name"]: p for p in json.load(open(sys.argv[1]))["pools"] if not p["deleted"]}
lab = pools.get("lab")
ok = lab is not None and lab["addresses"] == ["198.19.0.10", "198.19.0.11"] and lab["policy"] == "liberal" \
    and "extra" not in pools and lab["timeouts"]["tcp_established"] == 7440
print(json.dumps({k: (v["addresses"], v["policy"]) for k, v in pools.items()}))
sys.exit(0 if ok else 1)
PY
finish
