#!/bin/bash
# Cold start: the first burst after the gateway starts, before it knows any neighbour. A fresh
# lab with ONE pool address and the default configuration; `tools/lab up` has pinged the server
# from h1 (so the gateway already knows h1 and the server), so each round first restarts the
# gateway (`tools/lab restart-gateway`: snatgw stopped and started again with the same command,
# no session, no neighbour; kernel: conntrack -F and its neighbour cache flushed). Then every
# inside host opens SNL_COLD_THREADS (32) connections at the same instant (race_client
# --start-at: 4 x 32 = 128 SYNs within a millisecond) to a race_server on the server, each
# closed at once by the client. Two rounds:
#   cold lab           the gateway restarted AND every neighbour cache of the lab flushed (hosts,
#                      server): as after a power cut, each host first asks for the gateway's MAC
#   gateway restarted  the gateway restarted alone: the hosts and the server still know its
#                      MACs and send at once; the gateway must resolve every host and the
#                      server while the burst waits
# Each round passes when every connect succeeded, none needed a second SYN (TCP_INFO, and
# TcpExtTCPSynRetrans over the hosts), the server accepted them all and rejected no SYN on a
# TIME_WAIT (TcpExtPAWSTimewait). The gateway's counters after each round show what was held
# for a neighbour and what was dropped (snatgw: control held / released / hold_dropped).
# Knobs: SNL_COLD_THREADS (32 per host), SNL_COLD_ROUNDS ("cold restarted").
source "$(dirname "$0")/lib.sh"
lab_fresh --pool-addresses 198.19.0.10

threads="${SNL_COLD_THREADS:-32}"
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
server=$(race_bin race_server) || { fail "race_server is not built"; finish; }
hosts=$(host_count)

round() {  # tag label port flush(0|1)
    local name="$1" label="$2" port="$3" flush="$4" i srv_pid pids=() start_at
    say "round '$label': $(lab_mode) gateway restarted$([ "$flush" = 1 ] && echo ', every neighbour cache of the lab flushed')"
    ip netns exec snl-srv "$server" --threads 2 --address "$SERVER" --port "$port" --json \
        > "$TEST_TMP/$name-server.json" 2> "$TEST_TMP/$name-server.err" &
    srv_pid=$!
    _bg_pids+=("$srv_pid")
    "$LAB" restart-gateway > "$TEST_TMP/$name-restart.log" 2>&1 \
        || { fail "tools/lab restart-gateway: $(tail -n 5 "$TEST_TMP/$name-restart.log")"; finish; }
    if [ "$flush" = 1 ]; then
        for ((i = 1; i <= hosts; i++)); do in_ns "h$i" ip neigh flush all; done
        in_ns srv ip neigh flush all
    fi
    kill -0 "$srv_pid" 2>/dev/null || { fail "race_server on :$port did not start: $(cat "$TEST_TMP/$name-server.err")"; finish; }
    say "neighbours known now: hosts -> gateway: $(for ((i = 1; i <= hosts; i++)); do in_ns "h$i" ip neigh show 198.18.0.1 | awk '{print $NF}'; done | sort | uniq -c | xargs echo); server: $(in_ns srv ip neigh show | awk '{print $1 "=" $NF}' | xargs echo)"
    tcp_snapshot "$TEST_TMP/$name-tcp.before"
    # Every process waits for the same wall-clock moment, 1 s from now (time enough to start 4
    # processes of 32 threads; the gateway has been ready for about as long).
    start_at=$(date +%s.%N | awk '{printf "%.3f", $1 + 1}')
    for ((i = 1; i <= hosts; i++)); do
        ip netns exec "snl-h$i" timeout -k 5 30 "$client" --target "$SERVER:$port" --threads "$threads" \
            --count "$threads" --duration 15 --connect-timeout 3 --start-at "$start_at" --interval 0 --json \
            > "$TEST_TMP/$name-h$i.json" 2> "$TEST_TMP/$name-h$i.progress" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    sleep 0.5
    kill -TERM "$srv_pid"
    wait "$srv_pid"
    tcp_snapshot "$TEST_TMP/$name-tcp.after"
    local retrans paws
    retrans=$(tcp_delta "$TEST_TMP/$name-tcp.before" "$TEST_TMP/$name-tcp.after" TcpExtTCPSynRetrans snl-h)
    paws=$(tcp_delta "$TEST_TMP/$name-tcp.before" "$TEST_TMP/$name-tcp.after" TcpExtPAWSTimewait snl-srv)
    "$PY3" - "$TEST_TMP" "$name" "$hosts" "$((hosts * threads))" "$retrans" "$paws" > "$TEST_TMP/$name.verdict" <<'PY'
import json, sys
tmp, name, hosts, want, retrans, paws = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ok = failed = tcpinfo = slow = 0
mx = 0.0
errors = {}
reported = 0
for i in range(1, hosts + 1):
    try:
        r = json.load(open(f"{tmp}/{name}-h{i}.json"))
    except (OSError, ValueError):
        continue
    reported += 1
    ok += r["connects_ok"]; failed += r["connects_failed"]; tcpinfo += r["syn_retransmitted"]
    slow += r["slow_1s_after_call"]; mx = max(mx, r["connect_ms"]["max"])
    for k, v in list(r["errors"].items()) + list(r["errors_other"].items()):
        if v and k != "other":
            errors[k] = errors.get(k, 0) + v
try:
    accepted = json.load(open(f"{tmp}/{name}-server.json"))["accepted"]
except (OSError, ValueError, KeyError):
    accepted = -1
errs = " ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
print(f"INFO figures: connects={ok + failed} ok={ok} failed={failed} ({errs}) syn_retrans_tcp_info={tcpinfo} "
      f"syn_retrans_nstat={retrans} paws_timewait={paws} server_accepted={accepted} slowest_ms={mx:.1f} >=1s={slow}")
print(f"CHECK {int(reported == hosts)} every host's race_client reported ({reported} of {hosts})")
print(f"CHECK {int(ok == want and failed == 0)} all {want} simultaneous connects succeeded ({ok} ok, {failed} failed: {errs})")
print(f"CHECK {int(tcpinfo == 0 and retrans == 0)} no SYN sent twice (TCP_INFO: {tcpinfo} connects; TcpExtTCPSynRetrans +{retrans})")
print(f"CHECK {int(accepted == ok)} the server accepted every completed connect ({accepted} of {ok})")
print(f"CHECK {int(paws == 0)} no SYN rejected by a TIME_WAIT at the server (TcpExtPAWSTimewait +{paws})")
PY
    local kind rest
    while read -r kind rest; do
        if [ "$kind" = INFO ]; then say "[$label] $rest"; continue; fi
        if [ "${rest%% *}" = 1 ]; then ok "[$label] ${rest#* }"; else fail "[$label] ${rest#* }"; fi
    done < "$TEST_TMP/$name.verdict"
    say "[$label] server TCP counters that moved: $(server_tcp_moved "$TEST_TMP/$name-tcp.before" "$TEST_TMP/$name-tcp.after")"
    gateway_report
}

port=7010
for r in ${SNL_COLD_ROUNDS:-cold restarted}; do
    case "$r" in
        cold) round cold "cold lab" "$port" 1 ;;
        restarted) round restarted "gateway restarted" "$port" 0 ;;
        *) fail "SNL_COLD_ROUNDS: unknown round '$r' (cold, restarted)" ;;
    esac
    port=$((port + 1))
done
finish
