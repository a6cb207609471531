#!/bin/bash
# Port reuse: a new connection from the same inside address and port, right after the previous
# one closed, must succeed at once (no SYN lost to a stale mapping: connect well under 1 s) and
# keep its public port. Five rounds each, from h1 to nginx:
#   server-closes  HTTP/1.0: nginx closes first and holds TIME_WAIT; the gateway's mapping is
#                  in its remote-closed state (snatgw: quarantine) when the same flow returns
#   client-rst     HTTP/1.1: the client aborts with a RST (SO_LINGER 0) after the response
#   other-host     h1 and h2 take turns on the same inside port, nginx closing first each time:
#                  the new host must not be given the public (port, remote) pair the server
#                  still holds in TIME_WAIT (snatgw quarantines it), else its SYN meets the
#                  server's TIME_WAIT and is lost or answered with an ACK: a >= 1 s connect
# (A client-first FIN close leaves TIME_WAIT on the client itself, whose kernel then refuses
# the same 4-tuple: that is not the gateway's doing, so it is not tested here.)
source "$(dirname "$0")/lib.sh"
lab_ensure

log="$SNL_DIR/nginx-access.log"
for spec in server-closes:20001 client-rst:20002; do
    mode=${spec%%:*} port=${spec#*:}
    before=$(wc -l < "$log")
    out=$(in_ns h1 python3 - "$SERVER" 198.18.0.11 "$port" "$mode" <<'PY'
import socket, struct, sys, time
server, src, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for rnd in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, port))
    s.settimeout(3.0)
    t0 = time.monotonic()
    try:
        s.connect((server, 80))
    except OSError as e:
        print(f"{rnd} connect-failed {e.__class__.__name__}:{e.errno} {time.monotonic() - t0:.3f}")
        s.close()
        continue
    ct = time.monotonic() - t0
    if mode == "server-closes":
        s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: lab\r\n\r\n")
    else:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: lab\r\n\r\n")
    data = b""
    try:
        while not data.endswith(b"hello through the gateway\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if mode == "server-closes":
            while s.recv(4096):
                pass
    except OSError as e:
        print(f"{rnd} recv-failed {e.__class__.__name__} {ct:.3f}")
        s.close()
        continue
    if mode == "client-rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    good = data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello through the gateway\n")
    print(f"{rnd} {'ok' if good else 'bad-response'} {ct:.3f}")
    time.sleep(0.05)
PY
)
    echo "$out" | sed "s/^/    $mode round /"
    sleep 0.3
    pubs=$(tail -n +"$((before + 1))" "$log" | awk '{print $1}' | sort -u | tr '\n' ' ')
    n_ok=$(grep -c ' ok ' <<<"$out")
    slowest=$(awk '{print $3}' <<<"$out" | sort -n | tail -1)
    say "$mode: server saw ${pubs:-nothing}"
    check "$mode: 5/5 reconnects from 198.18.0.11:$port succeeded (got $n_ok)" [ "$n_ok" -eq 5 ]
    check "$mode: every connect took < 0.5 s (slowest ${slowest:-?} s)" \
        python3 -c "import sys; sys.exit(0 if float('${slowest:-9}') < 0.5 else 1)"
    check "$mode: the same public address:port every round (${pubs:-none})" [ "$(wc -w <<<"$pubs")" -eq 1 ]
done
# other-host: one connection per python run, alternating two hosts on inside port 20003.
cat > "$TEST_TMP/one.py" <<'PY'
import socket, sys, time
server, src, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, port))
s.settimeout(3.0)
t0 = time.monotonic()
try:
    s.connect((server, 80))
    ct = time.monotonic() - t0
    s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: lab\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print("ok" if data.endswith(b"hello through the gateway\n") else "bad-response", f"{ct:.3f}")
except OSError as e:
    print(f"failed:{e.__class__.__name__} {time.monotonic() - t0:.3f}")
PY
# Partner: a host whose connections leave from the same pool address as h1's (learned from one
# connection each on inside port 20004), so the two compete for the same public ports.
partner=2
h1_addr=$(tail -n 20 "$log" | awk '/:20001 / {split($1, a, ":"); print a[1]; exit}')
for ((h = 2; h <= $(host_count); h++)); do
    before=$(wc -l < "$log")
    in_ns "h$h" python3 "$TEST_TMP/one.py" "$SERVER" "198.18.0.1$h" 20004 >/dev/null
    sleep 0.1
    addr=$(tail -n +"$((before + 1))" "$log" | awk '{split($1, a, ":"); print a[1]; exit}')
    if [ "$addr" = "$h1_addr" ]; then partner=$h; break; fi
done
say "other-host: h1 and h$partner (both leave from ${h1_addr:-?} as far as seen)"
before=$(wc -l < "$log")
results=""
for rnd in 0 1 2 3 4; do
    for h in 1 "$partner"; do
        r=$(in_ns "h$h" python3 "$TEST_TMP/one.py" "$SERVER" "198.18.0.1$h" 20003)
        echo "    other-host round $rnd h$h: $r"
        results+="$r"$'\n'
    done
done
sleep 0.3
pubs=$(tail -n +"$((before + 1))" "$log" | awk '{print $1}' | sort | uniq -c | awk '{printf "%s(x%s) ", $2, $1}')
say "other-host: server saw $pubs"
n_ok=$(grep -c '^ok ' <<<"$results")
slowest=$(awk 'NF {print $2}' <<<"$results" | sort -n | tail -1)
check "other-host: 10/10 connects from h1 and h$partner alternating on inside port 20003 succeeded (got $n_ok)" [ "$n_ok" -eq 10 ]
check "other-host: every connect took < 0.5 s (slowest ${slowest:-?} s)" \
    python3 -c "import sys; sys.exit(0 if float('${slowest:-9}') < 0.5 else 1)"
finish
