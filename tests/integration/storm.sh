#!/bin/bash
# The connect storm (the SNAT port race): every inside host runs race_client with 16 threads
# connecting concurrently to the same server address and port for a bounded time (10 s), each
# connection closed at once by the client. Passes when
#   - no connect failed (timeout, refused, reset, ...) and none took >= 1 s (a lost SYN that
#     had to be retransmitted: what the race does to a Linux SNAT box),
#   - the server accepted exactly as many connections as the clients completed,
#   - the server saw every connection from a pool address, and no two connections that were
#     open at the same time from the same (pool address, port).
# A connect that needed a retransmitted SYN (TCP_INFO) is reported apart from one that was only
# slow. The 1 s limit is counted from the return of the connect() call: after a few seconds
# of storm each host holds ~30k TIME_WAIT sockets toward the server, and its own search for a
# free local port inside connect() then takes milliseconds, on two saturated cores sometimes
# a second - the client's cost, not the network's (it is shown apart).
# Knobs: SNL_STORM_SECONDS (10), SNL_STORM_THREADS (16), SNL_STORM_PORT (7001),
# SNL_STORM_PAUSE_MS (per-thread pause between connects, 0), SNL_STORM_SERVER_CLOSES (1: the
# server closes first, so it holds every (public address, port) pair in TIME_WAIT: the case
# where a SNAT box that reuses a pair too early meets TIME_WAIT and the connect stalls).
source "$(dirname "$0")/lib.sh"
lab_ensure

seconds="${SNL_STORM_SECONDS:-10}"
threads="${SNL_STORM_THREADS:-16}"
port="${SNL_STORM_PORT:-7001}"
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
server=$(race_bin race_server) || { fail "race_server is not built"; finish; }
hosts=$(host_count)
server_close=() client_close=() closer="client closes first"
if [ "${SNL_STORM_SERVER_CLOSES:-0}" = 1 ]; then
    server_close=(--close-first) client_close=(--server-closes) closer="server closes first"
fi

ip netns exec snl-srv "$server" "${server_close[@]}" --threads 2 --address "$SERVER" --port "$port" --log-peers "$TEST_TMP/peers" --log-times \
    --json > "$TEST_TMP/server.json" 2> "$TEST_TMP/server.err" &
srv_pid=$!
_bg_pids+=("$srv_pid")
sleep 0.5
kill -0 "$srv_pid" 2>/dev/null || { fail "race_server did not start: $(cat "$TEST_TMP/server.err")"; finish; }

# Counters of the lab's TCP stacks, before and after: SYNs the hosts retransmitted, and SYNs or
# handshake ACKs the server itself dropped because its accept queue was full (then the server,
# not the gateway, was too slow).
counter() { in_ns "$1" nstat -az "$2" | awk -v n="$2" '$1 == n {print $2}'; }
syn_retrans_total() {
    local i t=0 r
    for ((i = 1; i <= hosts; i++)); do r=$(counter "h$i" TcpExtTCPSynRetrans); t=$((t + ${r:-0})); done
    echo "$t"
}
drop_counters > "$TEST_TMP/drops.before"
retrans_before=$(syn_retrans_total)
overflows_before=$(counter srv TcpExtListenOverflows)
say "storm: $hosts hosts x $threads threads -> $SERVER:$port for $seconds s, $closer ($(lab_mode) gateway)"
pids=()
for ((i = 1; i <= hosts; i++)); do
    ip netns exec "snl-h$i" "$client" "${client_close[@]}" --target "$SERVER:$port" --threads "$threads" --duration "$seconds" \
        --pause-ms "${SNL_STORM_PAUSE_MS:-0}" --interval 5 --json > "$TEST_TMP/h$i.json" 2> "$TEST_TMP/h$i.progress" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# The server may be behind (its accept queue holds what it has not accepted yet, and it shares
# two cores with 64 client threads): wait until it has accepted as many as the clients
# completed, or its count stops moving for 3 s (bounded at 30 s).
completed=$(cat "$TEST_TMP"/h*.json | python3 -c 'import json, sys; print(sum(json.loads(l)["connects_ok"] for l in sys.stdin if l.strip()))')
last=-1 still=0
for ((n = 0; n < 60 && still < 6; n++)); do
    kill -USR1 "$srv_pid"
    sleep 0.5
    acc=$(awk '/accepted/ {n = $3} END {print n + 0}' "$TEST_TMP/server.err")
    [ "$acc" -ge "$completed" ] && break
    if [ "$acc" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$acc
done
say "server caught up after $n polls: accepted $acc of $completed"
kill -TERM "$srv_pid"
wait "$srv_pid"
for ((i = 1; i <= hosts; i++)); do sed "s/^/    h$i /" "$TEST_TMP/h$i.progress"; done
retrans=$(( $(syn_retrans_total) - retrans_before ))
overflows=$(( $(counter srv TcpExtListenOverflows) - ${overflows_before:-0} ))
drop_counters > "$TEST_TMP/drops.after"
grown=$(drop_deltas "$TEST_TMP/drops.before" "$TEST_TMP/drops.after")
say "interface drop/error counters that grew during the storm: ${grown:-none}"
say "during the storm: the hosts retransmitted $retrans SYN(s); the server's accept queue overflowed $overflows time(s)$([ "$overflows" -gt 0 ] && echo ' (those were dropped by the server, not the gateway)')"

python3 - "$TEST_TMP" "$hosts" "$(cat "$SNL_DIR/state/pool")" > "$TEST_TMP/verdict" <<'PY'
import json, sys
from collections import defaultdict
tmp, hosts, pool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
first, last = pool.split("-") if "-" in pool else (pool, pool)
prefix = first.rsplit(".", 1)[0] + "."
lo, hi = int(first.rsplit(".", 1)[1]), int(last.rsplit(".", 1)[1])

def in_pool(ip):
    return ip.startswith(prefix) and lo <= int(ip.rsplit(".", 1)[1]) <= hi

ok = failed = slow = slow_net = retrans = 0
call_p99 = call_max = 0.0
errors = defaultdict(int)
p99 = mx = 0.0
for i in range(1, hosts + 1):
    r = json.load(open(f"{tmp}/h{i}.json"))
    ok += r["connects_ok"]; failed += r["connects_failed"]; slow += r["slow_1s"]
    retrans += r["syn_retransmitted"]; slow_net += r["slow_1s_after_call"]
    call_p99 = max(call_p99, r["connect_call_ms"]["p99"]); call_max = max(call_max, r["connect_call_ms"]["max"])
    for k, v in list(r["errors"].items()) + list(r["errors_other"].items()):
        if v and k != "other":
            errors[k] += v
    p99 = max(p99, r["connect_ms"]["p99"]); mx = max(mx, r["connect_ms"]["max"])
slow_at = defaultdict(int)
for i in range(1, hosts + 1):
    for t in json.load(open(f"{tmp}/h{i}.json")).get("slow_started_at_s", []):
        slow_at[int(t)] += 1
srv = json.load(open(f"{tmp}/server.json"))
by_peer = defaultdict(list)
lines = not_pool = 0
for line in open(f"{tmp}/peers"):
    peer, a, c = line.split()
    lines += 1
    ip = peer.rsplit(":", 1)[0]
    if not in_pool(ip):
        not_pool += 1
    by_peer[peer].append((int(a), int(c)))
overlaps = 0
example = ""
for peer, spans in by_peer.items():
    spans.sort()
    for (a1, c1), (a2, c2) in zip(spans, spans[1:]):
        if a2 < c1:
            overlaps += 1
            example = example or f"{peer} open {a1}-{c1} ms and {a2}-{c2} ms"
addrs = sorted({p.rsplit(":", 1)[0] for p in by_peer})
errs = " ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
print(f"INFO clients: {ok} connects ({ok / max(1, json.load(open(f'{tmp}/h1.json'))['seconds']):.0f}/s), "
      f"{failed} failed ({errs}), {slow_net} took >= 1 s after the connect() call "
      f"({slow} in all), {retrans} needed a SYN retransmission; connect ms: worst host p99 "
      f"{p99:.2f}, max {mx:.1f}; of it in the connect() call: worst p99 {call_p99:.2f}, max {call_max:.1f}")
print(f"INFO server: accepted {srv['accepted']}, {lines} peer lines, {len(by_peer)} distinct "
      f"(address, port) from {', '.join(addrs)}")
if slow_at:
    print("INFO slow connects began at (second of the storm: count): " +
          " ".join(f"{k}s:{v}" for k, v in sorted(slow_at.items())))
print(f"CHECK {int(ok > 0)} the storm made connections ({ok})")
print(f"CHECK {int(failed == 0)} zero failed connects (got {failed}: {errs})")
print(f"CHECK {int(retrans == 0)} zero connects needing a SYN retransmission (got {retrans})")
print(f"CHECK {int(slow_net == 0)} zero connects taking >= 1 s from the SYN's sending (got {slow_net}; "
      f"{slow} counting the host's own connect() call)")
print(f"CHECK {int(srv['accepted'] == ok)} the server accepted every completed connect "
      f"({srv['accepted']} accepted, {ok} completed)")
print(f"CHECK {int(not_pool == 0 and lines > 0)} every connection came from a pool address "
      f"({not_pool} did not)")
print(f"CHECK {int(overlaps == 0)} no two concurrent connections from the same (pool address, port) "
      f"({overlaps} overlaps{': ' + example if example else ''})")
PY
while read -r kind rest; do
    if [ "$kind" = INFO ]; then say "$rest"; continue; fi
    verdict=${rest%% *}
    if [ "$verdict" = 1 ]; then ok "${rest#* }"; else fail "${rest#* }"; fi
done < "$TEST_TMP/verdict"

if [ "$(lab_mode)" = kernel ]; then
    say "kernel conntrack: $(in_ns gw conntrack -S 2>/dev/null | awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } } END { printf "insert_failed=%d drop=%d early_drop=%d clash_resolve=%d invalid=%d", s["insert_failed"], s["drop"], s["early_drop"], s["clash_resolve"], s["invalid"] }')"
else
    "$LAB" counters 2>/dev/null | sed 's/^/    /'
fi
finish
