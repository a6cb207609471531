#!/bin/bash
# Control-plane changes that used to stall a worker (issue 13): while a held TCP connection
# (h1, echo_hold.py) and a connect storm (h2-h4) run through the gateway, snatctl adds a pool
# of 4,096 addresses (a /20), deletes it, adds it again and deletes it again, and tries to add a
# pool whose port state does not fit the daemon's budget (dataplane.port_state_mb, lowered to
# 256 MiB here so that a /18 exceeds it without this machine having to hold gigabytes). Passes
# when
#   - the /20 adds and deletes were accepted, the too-large pool was refused with a message
#     naming dataplane.port_state_mb, and the pools read back as before (nothing changed),
#   - every echo of the held connection came back intact and the storm had zero failed connects,
#   - the worker's longest gap between two RX polls stayed under a loose bound (reported; it
#     was seconds when a worker built the port state of a /20 itself).
# Knobs: SNL_GROWTH_SECONDS (16), SNL_GROWTH_MAX_GAP_MS (50).
source "$(dirname "$0")/lib.sh"
[ "$SNL_GATEWAY" = snatgw ] || skip "live pool changes are a snatgw feature"
lab_fresh --config-extra dataplane.port_state_mb=256

seconds="${SNL_GROWTH_SECONDS:-16}"
max_gap_ms="${SNL_GROWTH_MAX_GAP_MS:-50}"
ctl="$SNL_BUILD/tools/snatctl/snatctl"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
snatctl() { "$ctl" --socket "$SNL_DIR/snatgw.sock" --timeout 30 "$@"; }
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }

# The longest RX poll gap of any worker so far, in ns, and the passes that took >= 16 ms.
gap_and_slow() {
    snatctl --json stats | "$PY3" -c '
import json, sys
j = json.load(sys.stdin)
gap = max(w["poll_gap_max_ns"] for w in j["workers"])
t = j["loop_pass_time"]
print(gap, t["total"][-1] + t["total"][-2])'
}

pools_before=$(snatctl --json pools | "$PY3" -c 'import json,sys; print(json.dumps(sorted((p["name"], p["addresses"]) for p in json.load(sys.stdin)["pools"] if not p["deleted"])))')
read -r gap_before slow_before <<<"$(gap_and_slow)"
say "longest poll gap before the load: $((gap_before / 1000)) us"

say "load for $seconds s: a held connection from h1, a connect storm from h2-h4"
in_ns h1 "$PY3" "$TESTS_DIR/echo_hold.py" "$SERVER" "$TEST_TMP" held & held_pid=$!
_bg_pids+=("$held_pid")
pids=()
for h in h2 h3 h4; do
    in_ns "$h" "$client" --target "$SERVER:7100" --threads 4 --duration "$seconds" --pause-ms 2 \
        --json > "$TEST_TMP/storm-$h.json" 2> "$TEST_TMP/storm-$h.err" & pids+=($!)
done
sleep 2

# The changes. The /20 and the /18 are outside every namespace's subnet: no host uses them and
# no rule sends traffic to them; what is measured is what building their state costs a worker.
accepted=0 wanted=0
for round in 1 2; do
    for c in "pool add big --addresses 198.19.16.0/20 --rule 198.18.0.250/32" "pool del big"; do
        wanted=$((wanted + 1))
        t0=$(date +%s%N)
        # shellcheck disable=SC2086  # a change is a list of words
        if snatctl $c > "$TEST_TMP/change.out" 2>&1; then
            accepted=$((accepted + 1))
            say "round $round: snatctl $c: accepted in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        else
            say "round $round: snatctl $c: REFUSED: $(cat "$TEST_TMP/change.out")"
        fi
        sleep 1
    done
done
if snatctl pool add huge --addresses 198.19.64.0/18 > "$TEST_TMP/huge.out" 2>&1; then huge_rc=0; else huge_rc=$?; fi
say "snatctl pool add huge --addresses 198.19.64.0/18 (16,384 addresses): exit $huge_rc: $(cat "$TEST_TMP/huge.out")"

for p in "${pids[@]}"; do wait "$p"; done
touch "$TEST_TMP/held.stop"
wait "$held_pid"
read -r gap_after slow_after <<<"$(gap_and_slow)"

check "every /20 add and delete was accepted ($accepted of $wanted)" [ "$accepted" -eq "$wanted" ]
check "the pool too large for dataplane.port_state_mb was refused" [ "$huge_rc" -ne 0 ]
check "the refusal names dataplane.port_state_mb" grep -q "dataplane.port_state_mb" "$TEST_TMP/huge.out"
pools_after=$(snatctl --json pools | "$PY3" -c 'import json,sys; print(json.dumps(sorted((p["name"], p["addresses"]) for p in json.load(sys.stdin)["pools"] if not p["deleted"])))')
check "the pools read back as before ($pools_after)" [ "$pools_after" = "$pools_before" ]

read -r held_ok held_failed held_max_ms held_peer < "$TEST_TMP/held.result" || held_ok=0
say "held connection (as $held_peer): $held_ok echoes back intact, $held_failed not, slowest ${held_max_ms} ms"
check "the held connection got every echo back intact" [ "${held_ok:-0}" -gt 50 -a "${held_failed:-1}" -eq 0 ]
# Each race_client prints its final report as one JSON object.
read -r ok failed <<<"$("$PY3" - "$TEST_TMP"/storm-h*.json <<'PY' 2>/dev/null || echo "0 -1"
import json, sys
ok = failed = 0
for path in sys.argv[1:]:
    r = json.loads(open(path).read().strip().splitlines()[-1])
    ok += r["connects_ok"]
    failed += r["connects_failed"]
print(ok, failed)
PY
)"
say "storm from h2-h4: $ok connects, $failed failed"
check "the storm made connections and none failed" [ "${ok:-0}" -gt 0 -a "${failed:--1}" -eq 0 ]

say "longest poll gap of any worker: $((gap_after / 1000)) us (before the changes: $((gap_before / 1000)) us); passes >= 16 ms during the load: $((slow_after - slow_before))"
check "the longest poll gap stayed under $max_gap_ms ms (loose: the lab shares 2 cores)" \
    [ "$gap_after" -lt $((max_gap_ms * 1000000)) ]
check "the daemon is alive and answers" snatctl version
gateway_report
finish
