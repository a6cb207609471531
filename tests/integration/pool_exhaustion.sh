#!/bin/bash
# A small pool exhausted by many hosts. The lab runs with a pool of one address and 16 ports
# (198.19.0.10, 20000-20015). Every inside host opens connections to the server's TCP echo
# service (:7100) one after another until one fails (at most 6 each: 24 > 16), and holds them.
#   - the pool fills: 16 connections held in all (one worker; with more, each has its share)
#   - further connects fail cleanly: a timeout (the SYN is dropped and counted), never a
#     refusal or reset invented by the gateway
#   - the gateway keeps serving the sessions it has: an echo on every held connection
#   - another remote still gets through (mapping is per remote: the public ports toward
#     :80 are free)
#   - it is counted (snatgw: ports_exhausted; kernel: conntrack insert_failed/drop)
#   - after the holders close, the pool recovers when their sessions expire: a new connect
#     succeeds within 15 s
source "$(dirname "$0")/lib.sh"
lab_ensure --pool-addresses 198.19.0.10 --pool-ports 20000-20015
hosts=$(host_count)
pool_size=16

cat > "$TEST_TMP/holder.py" <<'PY'
import os, socket, sys, time
server, state, host, most = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
held, peers, failure = [], [], "none"
for n in range(most):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect((server, 7100))
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(1)
        held.append(s)
        peers.append(line.decode().split()[1])
    except socket.timeout:
        failure = "timeout"; s.close(); break
    except ConnectionRefusedError:
        failure = "refused"; s.close(); break
    except ConnectionResetError:
        failure = "reset"; s.close(); break
    except OSError as e:
        failure = f"errno{e.errno}"; s.close(); break
with open(f"{state}/{host}.filled", "w") as f:
    f.write(f"{len(held)} {failure} {' '.join(peers)}\n")

def wait_for(name):
    t = time.monotonic()
    while not os.path.exists(f"{state}/{name}") and time.monotonic() - t < 120:
        time.sleep(0.05)

wait_for("check")
good = 0
for i, s in enumerate(held):
    msg = f"{host}-{i}\n".encode()
    try:
        s.settimeout(3.0)
        s.sendall(msg)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        good += data == msg
    except OSError:
        pass
with open(f"{state}/{host}.echo", "w") as f:
    f.write(f"{good} {len(held)}\n")
wait_for("release")
for s in held:
    s.close()
PY

say "filling the pool: every host connects to $SERVER:7100 until a connect fails"
for ((i = 1; i <= hosts; i++)); do
    ip netns exec "snl-h$i" "$PY3" "$TEST_TMP/holder.py" "$SERVER" "$TEST_TMP" "h$i" 6 &
    _bg_pids+=($!)
done
for ((n = 0; n < 300; n++)); do
    [ "$(ls "$TEST_TMP"/*.filled 2>/dev/null | wc -l)" -ge "$hosts" ] && break
    sleep 0.1
done
total=0 unclean=0 nfail=0
for ((i = 1; i <= hosts; i++)); do
    read -r held failure _ < "$TEST_TMP/h$i.filled" || { held=0; failure=missing; }
    say "h$i: holds $held connection(s), then: $failure"
    total=$((total + held))
    [ "$failure" = none ] || nfail=$((nfail + 1))
    case "$failure" in none | timeout) ;; *) unclean=$((unclean + 1)) ;; esac
done
workers=$(cat "$SNL_DIR/state/workers" 2>/dev/null || echo 1)
if [ "$(lab_mode)" = kernel ] || [ "$workers" = 1 ]; then
    check "the pool filled: $total connections held (pool: $pool_size ports)" [ "$total" -eq "$pool_size" ]
else
    check "the pool filled: $total connections held (pool: $pool_size ports over $workers workers)" \
        [ "$total" -ge $((pool_size / workers)) -a "$total" -le "$pool_size" ]
fi
check "further connects failed ($nfail of $hosts hosts hit the limit)" [ "$nfail" -gt 0 ]
check "they failed cleanly: timeouts, no refusal or reset ($unclean unclean)" [ "$unclean" -eq 0 ]

touch "$TEST_TMP/check"
for ((n = 0; n < 100; n++)); do
    [ "$(ls "$TEST_TMP"/*.echo 2>/dev/null | wc -l)" -ge "$hosts" ] && break
    sleep 0.1
done
good=0
for ((i = 1; i <= hosts; i++)); do
    read -r g _ < "$TEST_TMP/h$i.echo" || g=0
    good=$((good + g))
done
check "the held sessions keep working while the pool is exhausted: $good/$total echoes" [ "$good" -eq "$total" ]
body=$(in_ns h1 curl -s -m 5 "http://$SERVER/hello.txt" || true)
check "another remote ($SERVER:80) still gets through" [ "$body" = "hello through the gateway" ]

if [ "$(lab_mode)" = kernel ]; then
    stats=$(in_ns gw conntrack -S 2>/dev/null | awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } } END { printf "%d %d", s["insert_failed"], s["drop"] }')
    read -r insert_failed drop <<<"$stats"
    say "kernel conntrack: insert_failed=$insert_failed drop=$drop"
    check "the failures are counted (conntrack insert_failed + drop = $((insert_failed + drop)))" \
        [ $((insert_failed + drop)) -gt 0 ]
else
    counters=$("$LAB" counters 2>&1 || true)
    exhausted=$(grep -o 'ports_exhausted=[0-9]*' <<<"$counters" | tail -1 | cut -d= -f2)
    say "snatgw: ports_exhausted=${exhausted:-not shown}"
    check "the failures are counted (ports_exhausted=${exhausted:-none})" [ "${exhausted:-0}" -gt 0 ]
fi

touch "$TEST_TMP/release"
wait
say "holders closed their connections: waiting for the pool to recover"
t0=$(date +%s.%N)
recovered=no
for ((n = 0; n < 30; n++)); do
    if in_ns h1 "$PY3" -c "
import socket, sys
s = socket.create_connection(('$SERVER', 7100), timeout=1)
sys.exit(0 if s.recv(5) == b'peer ' else 1)" 2>/dev/null; then
        recovered=yes
        break
    fi
    sleep 0.5
done
dt=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
check "the pool recovered: a new connect succeeded ${dt} s after the close ($recovered)" [ "$recovered" = yes ]
finish
