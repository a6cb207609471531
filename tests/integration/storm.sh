#!/bin/bash
# The connect storm (the SNAT port race): every inside host runs race_client with 16 threads
# connecting concurrently to the same server address and port for a bounded time (10 s), each
# connection closed at once. Passes when
#   - no connect failed (timeout, refused, reset, ...) and none took >= 1 s (a lost SYN that
#     had to be retransmitted: what the race does to a Linux SNAT box),
#   - the hosts sent no SYN twice (TcpExtTCPSynRetrans, nstat, over every host: this also
#     counts the SYNs of connects that failed, which TCP_INFO cannot see),
#   - the server rejected no SYN on a TIME_WAIT socket's timestamp (TcpExtPAWSTimewait: a
#     public (address, port) pair handed to a new connection while the server still held the
#     old one; SNL_STORM_PAWS=0 leaves this check out),
#   - the server accepted exactly as many connections as the clients completed,
#   - the server saw every connection from a pool address, and no two connections that were
#     open at the same time from the same (pool address, port).
# A connect that needed a retransmitted SYN (TCP_INFO) is reported apart from one that was only
# slow. The 1 s limit is counted from the return of the connect() call: after a few seconds
# of storm each host holds ~30k TIME_WAIT sockets toward the server, and its own search for a
# free local port inside connect() then takes milliseconds, on two saturated cores sometimes
# a second - the client's cost, not the network's (it is shown apart).
#
# Knobs:
#   SNL_STORM_SECONDS (10), SNL_STORM_THREADS (16 per host), SNL_STORM_PORT (7001),
#   SNL_STORM_PAUSE_MS (per-thread pause between connects, 0),
#   SNL_STORM_CLOSE     who closes each connection:
#                       client  the client at once, the server when it reads the client's FIN
#                               (default; the client holds TIME_WAIT)
#                       server  the server at once after accept(), the client when it reads
#                               the server's FIN (race_client --server-closes): the server holds
#                               every (public address, port) pair in TIME_WAIT, the case where a
#                               SNAT box that reuses a pair too early meets TIME_WAIT.
#                               SNL_STORM_SERVER_CLOSES=1 is the same.
#                       both    close-on-accept: the server closes right after accept(), the
#                               client right after connect() returns, so both FINs cross
#                               (simultaneous close) and BOTH ends hold TIME_WAIT
#   SNL_STORM_CONNECT_TIMEOUT  race_client's connect timeout, s (3; 0.5 is what the Go client
#                       of the reports uses: a connect whose SYN is lost then fails)
#   SNL_STORM_POOL_ADDRESSES   N: a lab whose pool is N addresses from 198.19.0.10 (default:
#                       the lab's, 198.19.0.10-11)
#   SNL_STORM_FRESH_LAB 1: always a lab of its own, brought up for this storm
#   SNL_STORM_ADDRESSES_PER_HOST  source addresses each host's threads use round-robin: its own
#                       and N-1 from 198.18.0.211-254 (default one per 15 s of storm: a host's
#                       64,512 local ports stay 60 s in TIME_WAIT after a client or a
#                       simultaneous close, which a 30 s storm would use up). Each extra address
#                       pings the server once first, so that the gateway has resolved it (a real
#                       host announces itself with its ARP request for the gateway; the extra
#                       addresses are the lab's device and would not)
#   SNL_STORM_PAWS      1 (default): assert zero TcpExtPAWSTimewait at the server
source "$(dirname "$0")/lib.sh"

seconds="${SNL_STORM_SECONDS:-10}"
threads="${SNL_STORM_THREADS:-16}"
port="${SNL_STORM_PORT:-7001}"
connect_timeout="${SNL_STORM_CONNECT_TIMEOUT:-3}"
close="${SNL_STORM_CLOSE:-client}"
[ "${SNL_STORM_SERVER_CLOSES:-0}" = 1 ] && close=server
server_close=() client_close=()
case "$close" in
    client) closer="client closes first" ;;
    server) server_close=(--close-first) client_close=(--server-closes) closer="server closes first" ;;
    both) server_close=(--close-first) closer="both close at once (the server on accept, the client on connect: simultaneous close)" ;;
    *) fail "SNL_STORM_CLOSE must be client, server or both (got '$close')"; finish ;;
esac
lab_args=()
if [ -n "${SNL_STORM_POOL_ADDRESSES:-}" ]; then
    n_pool="$SNL_STORM_POOL_ADDRESSES"
    [[ "$n_pool" =~ ^[0-9]+$ ]] && [ "$n_pool" -ge 1 ] && [ "$n_pool" -le 100 ] \
        || { fail "SNL_STORM_POOL_ADDRESSES must be 1..100 (got '$n_pool')"; finish; }
    if [ "$n_pool" = 1 ]; then lab_args=(--pool-addresses 198.19.0.10)
    else lab_args=(--pool-addresses "198.19.0.10-198.19.0.$((9 + n_pool))"); fi
fi
if [ "${SNL_STORM_FRESH_LAB:-0}" = 1 ]; then lab_fresh "${lab_args[@]}"; else lab_ensure "${lab_args[@]}"; fi

client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
server=$(race_bin race_server) || { fail "race_server is not built"; finish; }
hosts=$(host_count)
addrs="${SNL_STORM_ADDRESSES_PER_HOST:-$(( ((seconds < 60 ? seconds : 60) + 14) / 15 ))}"
[[ "$addrs" =~ ^[0-9]+$ ]] && [ "$addrs" -ge 1 ] && [ $(( (addrs - 1) * hosts )) -le 44 ] \
    || { fail "SNL_STORM_ADDRESSES_PER_HOST: (N - 1) x hosts must be at most 44 (got N=$addrs)"; finish; }
# Source addresses of host I: its own, then ADDRS - 1 from 198.18.0.211-254.
host_addresses() {
    local i="$1" j list="198.18.0.$((10 + $1))"
    for ((j = 1; j < addrs; j++)); do list="$list,198.18.0.$((210 + (j - 1) * hosts + i))"; done
    echo "$list"
}
extra_added=()
remove_extra_addresses() {
    local e
    for e in "${extra_added[@]}"; do in_ns "${e%%/*}" ip addr del "${e#*/}/24" dev eth0 2>/dev/null || true; done
}
if [ "$addrs" -gt 1 ]; then
    for ((i = 1; i <= hosts; i++)); do
        for a in $(host_addresses "$i" | tr ',' ' '); do
            [ "$a" = "198.18.0.$((10 + i))" ] && continue
            in_ns "h$i" ip addr add "$a/24" dev eth0 && extra_added+=("h$i/$a")
            in_ns "h$i" ping -c 1 -W 2 -I "$a" "$SERVER" >/dev/null 2>&1 || say "warm-up: no answer to a ping from $a (h$i)"
        done
    done
fi

ip netns exec snl-srv "$server" "${server_close[@]}" --threads 2 --address "$SERVER" --port "$port" --log-peers "$TEST_TMP/peers" --log-times \
    --json > "$TEST_TMP/server.json" 2> "$TEST_TMP/server.err" &
srv_pid=$!
_bg_pids+=("$srv_pid")
sleep 0.5
kill -0 "$srv_pid" 2>/dev/null || { fail "race_server did not start: $(cat "$TEST_TMP/server.err")"; finish; }

# Counters of the lab's TCP stacks, before and after: SYNs the hosts retransmitted, SYNs the
# server rejected on a TIME_WAIT (PAWS), and SYNs or handshake ACKs the server itself dropped
# because its accept queue was full (then the server, not the gateway, was too slow).
drop_counters > "$TEST_TMP/drops.before"
tcp_snapshot "$TEST_TMP/tcp.before"
say "storm: $hosts hosts x $threads threads ($addrs source address(es) each) -> $SERVER:$port for $seconds s, connect timeout $connect_timeout s, $closer; pool $(cat "$SNL_DIR/state/pool") ($(lab_mode) gateway)"
pids=()
for ((i = 1; i <= hosts; i++)); do
    bind=()
    [ "$addrs" -gt 1 ] && bind=(--bind-from "$(host_addresses "$i")")
    # Bounded twice: --duration, and timeout (the duration, a connect timeout, the close wait).
    ip netns exec "snl-h$i" timeout -k 5 "$((seconds + 30))" "$client" "${client_close[@]}" "${bind[@]}" --target "$SERVER:$port" \
        --threads "$threads" --duration "$seconds" --connect-timeout "$connect_timeout" \
        --pause-ms "${SNL_STORM_PAUSE_MS:-0}" --interval 5 --json > "$TEST_TMP/h$i.json" 2> "$TEST_TMP/h$i.progress" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# The server may be behind (its accept queue holds what it has not accepted yet, and it shares
# two cores with 64 client threads): wait until it has accepted as many as the clients
# completed, or its count stops moving for 3 s (bounded at 30 s).
completed=$(cat "$TEST_TMP"/h*.json | python3 -c 'import json, sys; print(sum(json.loads(l)["connects_ok"] for l in sys.stdin if l.strip()))' 2>/dev/null || echo 0)
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
tcp_snapshot "$TEST_TMP/tcp.after"
retrans=$(tcp_delta "$TEST_TMP/tcp.before" "$TEST_TMP/tcp.after" TcpExtTCPSynRetrans snl-h)
overflows=$(tcp_delta "$TEST_TMP/tcp.before" "$TEST_TMP/tcp.after" TcpExtListenOverflows snl-srv)
paws=$(tcp_delta "$TEST_TMP/tcp.before" "$TEST_TMP/tcp.after" TcpExtPAWSTimewait snl-srv)
drop_counters > "$TEST_TMP/drops.after"
grown=$(drop_deltas "$TEST_TMP/drops.before" "$TEST_TMP/drops.after")
say "interface drop/error counters that grew during the storm: ${grown:-none}"
say "during the storm: the hosts retransmitted $retrans SYN(s); the server's accept queue overflowed $overflows time(s)$([ "$overflows" -gt 0 ] && echo ' (those were dropped by the server, not the gateway)')"
say "server TCP counters that moved: $(server_tcp_moved "$TEST_TMP/tcp.before" "$TEST_TMP/tcp.after")"

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
reports = {}
for i in range(1, hosts + 1):
    try:
        reports[i] = json.load(open(f"{tmp}/h{i}.json"))
    except (OSError, ValueError):
        pass  # no report (race_client killed by its time bound, or crashed): a check below
for i, r in reports.items():
    ok += r["connects_ok"]; failed += r["connects_failed"]; slow += r["slow_1s"]
    retrans += r["syn_retransmitted"]; slow_net += r["slow_1s_after_call"]
    call_p99 = max(call_p99, r["connect_call_ms"]["p99"]); call_max = max(call_max, r["connect_call_ms"]["max"])
    for k, v in list(r["errors"].items()) + list(r["errors_other"].items()):
        if v and k != "other":
            errors[k] += v
    p99 = max(p99, r["connect_ms"]["p99"]); mx = max(mx, r["connect_ms"]["max"])
fails_by_host = " ".join(f"h{i}={r['connects_failed']}" for i, r in reports.items())
slow_at = defaultdict(int)
for r in reports.values():
    for t in r.get("slow_started_at_s", []):
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
print(f"INFO clients: {ok} connects ({ok / max(1, max([r['seconds'] for r in reports.values()] or [1])):.0f}/s), "
      f"{failed} failed ({errs}), {slow_net} took >= 1 s after the connect() call "
      f"({slow} in all), {retrans} needed a SYN retransmission; connect ms: worst host p99 "
      f"{p99:.2f}, max {mx:.1f}; of it in the connect() call: worst p99 {call_p99:.2f}, max {call_max:.1f}")
print(f"INFO server: accepted {srv['accepted']}, {lines} peer lines, {len(by_peer)} distinct "
      f"(address, port) from {', '.join(addrs)}")
print(f"FIGURES connects={ok + failed} ok={ok} failed={failed} ({errs}; by host {fails_by_host}) "
      f"syn_retransmitted_tcp_info={retrans}")
if slow_at:
    print("INFO slow connects began at (second of the storm: count): " +
          " ".join(f"{k}s:{v}" for k, v in sorted(slow_at.items())))
print(f"CHECK {int(len(reports) == hosts)} every host's race_client reported ({len(reports)} of {hosts})")
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
    if [ "$kind" = FIGURES ]; then say "figures: $rest syn_retrans_nstat=$retrans paws_timewait=$paws"; continue; fi
    verdict=${rest%% *}
    if [ "$verdict" = 1 ]; then ok "${rest#* }"; else fail "${rest#* }"; fi
done < "$TEST_TMP/verdict"

check "zero SYN retransmissions at the hosts (TcpExtTCPSynRetrans +$retrans; also counts failed connects)" [ "$retrans" = 0 ]
if [ "${SNL_STORM_PAWS:-1}" = 1 ]; then
    check "zero SYNs rejected by a TIME_WAIT at the server (TcpExtPAWSTimewait +$paws)" [ "$paws" = 0 ]
else
    say "TcpExtPAWSTimewait +$paws (not checked: SNL_STORM_PAWS=0)"
fi

gateway_report
remove_extra_addresses
finish
