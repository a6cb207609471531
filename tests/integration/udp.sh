#!/bin/bash
# UDP request/response through the gateway: from every inside host, 50 datagrams of distinct
# contents to the server's echo service (198.19.0.2:7007, which answers "<peer ip:port>|data").
# Every answer must come back with its own contents, and the server must have seen a pool
# address - the same public address and port for every datagram of one inside socket.
source "$(dirname "$0")/lib.sh"
lab_ensure

hosts=$(host_count)
pool=$(cat "$SNL_DIR/state/pool")
for ((i = 1; i <= hosts; i++)); do
    out=$(in_ns "h$i" python3 - "$SERVER" "$i" "$pool" <<'PY'
import socket, sys
server, host, pool = sys.argv[1], sys.argv[2], sys.argv[3]
first, last = pool.split("-") if "-" in pool else (pool, pool)
lo, hi = int(first.rsplit(".", 1)[1]), int(last.rsplit(".", 1)[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((server, 7007))
answered, lost, wrong, peers = 0, 0, 0, set()
for n in range(50):
    payload = f"h{host}-req{n}-".encode() + bytes([n]) * (n * 20)
    s.send(payload)
    try:
        data = s.recv(65535)
    except socket.timeout:
        # One retry: UDP may lose a datagram; two losses in a row are a failure.
        s.send(payload)
        try:
            data = s.recv(65535)
        except socket.timeout:
            lost += 1
            continue
    peer, _, echoed = data.partition(b"|")
    if echoed != payload:
        wrong += 1
        continue
    answered += 1
    peers.add(peer.decode())
pool_ok = all(p.split(":")[0].startswith(first.rsplit(".", 1)[0] + ".") and
              lo <= int(p.split(":")[0].rsplit(".", 1)[1]) <= hi for p in peers)
print(answered, lost, wrong, len(peers), int(pool_ok), ",".join(sorted(peers)))
PY
)
    read -r answered lost wrong npeers pool_ok peers <<<"$out"
    say "h$i: $answered answered, $lost lost, $wrong wrong, server saw ${peers:-nothing}"
    check "h$i: 50/50 UDP answers with the right contents" [ "${answered:-0}" -eq 50 ]
    check "h$i: one public address:port for the socket, in the pool" [ "${npeers:-0}:${pool_ok:-0}" = 1:1 ]
done
finish
