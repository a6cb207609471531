#!/bin/bash
# The control socket and snatctl against the running daemon in the lab:
#   - snatctl version / stats / pools / sessions (filters, paging, count) in tables and --json,
#     with the counts matching the traffic this test makes;
#   - sessions flush by filter ends exactly those sessions;
#   - bad requests on the raw socket (not JSON, unknown command, unknown field, oversized line,
#     a half-sent request) get an error reply or a closed connection and change nothing;
#     16 clients at once are all answered;
#   - a second daemon on the same socket refuses to start; the socket is owner-only (0600);
#   - `save` writes a file the daemon accepts (`--check-config`) with the running pools;
#   - log level changes; the NAT event log records creations and deletions.
source "$(dirname "$0")/lib.sh"
[ "$SNL_GATEWAY" = snatgw ] || skip "the control socket is a snatgw feature"
lab_ensure

ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
snatctl() { "$ctl" --socket "$sock" --timeout 10 "$@"; }
json_get() { "$PY3" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

check "snatctl version answers" snatctl version
check "the socket is owner-only (0600)" [ "$(stat -c %a "$sock")" = 600 ]

# Known traffic: 20 UDP flows from h2 (distinct source ports) to the lab's UDP echo service,
# after ending what earlier tests on a shared lab left of h2's UDP sessions.
snatctl sessions flush --inside 198.18.0.12 --proto udp >/dev/null
in_ns h2 "$PY3" - "$SERVER" <<'PY'
import socket, sys
for i in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind(("0.0.0.0", 41000 + i))
    s.sendto(b"hello %d" % i, (sys.argv[1], 7007))
    s.recvfrom(2048)
    s.close()
PY
n=$(snatctl --json sessions --inside 198.18.0.12 --proto udp --count | json_get 'd["total"]')
check "sessions --count sees the 20 UDP flows of h2 (got $n)" [ "$n" = 20 ]
page=$(snatctl --json sessions --inside 198.18.0.12 --proto udp --offset 5 --limit 10)
check "paging: offset 5 limit 10 gives 10 of 20" [ "$(echo "$page" | json_get 'len(d["sessions"])')" = 10 -a "$(echo "$page" | json_get 'd["total"]')" = 20 ]
one=$(snatctl --json sessions --inside 198.18.0.12:41003 | json_get 'd["sessions"][0]["remote"]')
check "filter by inside address:port finds the flow to the echo service ($one)" [ "$one" = "$SERVER:7007" ]
check "the table view lists the flows" bash -c "'$ctl' --socket '$sock' sessions --inside 198.18.0.12 | grep -q '198.18.0.12:41003'"
check "stats shows the sessions (table and JSON)" bash -c "'$ctl' --socket '$sock' stats | grep -q 'sessions by state' && [ \$('$ctl' --socket '$sock' --json stats | '$PY3' -c 'import json,sys; print(json.load(sys.stdin)[\"sessions_by_state\"][\"udp\"])') -ge 20 ]"
check "pools lists the lab pool with its addresses" bash -c "'$ctl' --socket '$sock' --json pools | grep -q '198.19.0.10'"

flushed=$(snatctl --json sessions flush --inside 198.18.0.12 --proto udp | json_get 'd["flushed"]')
left=$(snatctl --json sessions --inside 198.18.0.12 --proto udp --count | json_get 'd["total"]')
check "sessions flush by filter ended exactly those 20 (flushed $flushed, left $left)" [ "$flushed" = 20 -a "$left" = 0 ]
check "flush without a filter is refused" bash -c "! '$ctl' --socket '$sock' sessions flush 2>/dev/null"

# Raw socket abuse: every case answered with the right error code or closed, daemon unharmed.
"$PY3" - "$sock" > "$TEST_TMP/raw.txt" 2>&1 <<'PY'
import json, socket, sys, threading, time
path = sys.argv[1]
def ask(payload, timeout=8, replies=1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(payload)
    data = b""
    try:
        while data.count(b"\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        data = b"TIMEOUT"
    s.close()
    return data
def code(data):
    try:
        r = json.loads(data)
        return "ok" if r["ok"] else r["error"]["code"]
    except Exception:
        return "closed" if data == b"" else "garbage:" + data[:60].decode(errors="replace")
cases = {
    "not_json": code(ask(b"this is not json\n")),
    "array": code(ask(b"[1,2]\n")),
    "unknown_command": code(ask(b'{"command":"reboot"}\n')),
    "unknown_field": code(ask(b'{"command":"sessions","args":{"insde":"1.2.3.4"}}\n')),
    "bad_value": code(ask(b'{"command":"policy.set","args":{"pool":"lab","policy":"lenient"}}\n')),
    "bad_version": code(ask(b'{"version":9,"command":"version"}\n')),
    "no_pool": code(ask(b'{"command":"pool.del","args":{"name":"nosuch"}}\n')),
    "oversized": code(ask(b'{"command":"version","id":"' + b"x" * 70000 + b'"}\n')),
}
# Half-sent: a partial line, then silence: the daemon closes it (idle timeout 5 s).
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(path)
s.sendall(b'{"command":"vers')
t0 = time.time()
try:
    cases["half_sent"] = "closed" if s.recv(100) == b"" else "answered"
except socket.timeout:
    cases["half_sent"] = "still open after 10 s"
cases["half_sent_seconds"] = round(time.time() - t0, 1)
# Two requests on one connection, and 16 clients at once.
cases["pipelined"] = ask(b'{"command":"version","id":1}\n{"command":"version","id":2}\n', replies=2).count(b"\n")
results = []
def client(i):
    r = json.loads(ask(b'{"command":"stats","id":%d}\n' % i))
    results.append(r["ok"] and r["id"] == i)
threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
cases["concurrent_ok"] = sum(results)
print(json.dumps(cases))
PY
raw=$(tail -1 "$TEST_TMP/raw.txt")
say "raw socket: $raw"
expect() { echo "$raw" | "$PY3" -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get('$1') == $2 else 1)"; }
check "not JSON -> parse_error" expect not_json '"parse_error"'
check "a JSON array -> bad_request" expect array '"bad_request"'
check "unknown command -> unknown_command" expect unknown_command '"unknown_command"'
check "unknown field -> bad_request" expect unknown_field '"bad_request"'
check "bad policy value -> bad_request" expect bad_value '"bad_request"'
check "protocol version 9 -> unsupported_version" expect bad_version '"unsupported_version"'
check "deleting a pool that does not exist -> not_found" expect no_pool '"not_found"'
check "a 70 kB request -> request_too_large" expect oversized '"request_too_large"'
check "a half-sent request is closed by the daemon" expect half_sent '"closed"'
check "two requests on one connection get two replies" expect pipelined 2
check "16 clients at once all answered" expect concurrent_ok 16
check "the policy is unchanged after the bad requests" bash -c "'$ctl' --socket '$sock' --json pools | grep -q '\"policy\": \"liberal\"'"

# A second daemon must not take over the socket of a live one.
cp "$SNL_DIR/snatgw.conf" "$TEST_TMP/second.conf"
second=$(ip netns exec snl-gw "${SNATGW_BIN:-$SNL_BUILD/control/snatgw}" --config "$TEST_TMP/second.conf" --control.metrics "" -- --no-huge -m 256 --in-memory --no-telemetry --no-pci --vdev net_null0 --vdev net_null1 2>&1 | tail -3)
check "a second daemon on the same socket refuses to start ($(echo "$second" | grep -o 'another snatgw[^;]*' | head -1))" \
    bash -c "echo \"\$1\" | grep -q 'another snatgw is running'" _ "$second"
check "the first daemon still answers" snatctl version

# save: a file the daemon accepts, with the running pools.
snatctl pool set lab --ports 2000-60000 >/dev/null
check "save writes the running configuration" snatctl save "$TEST_TMP/saved.conf"
check "the saved file passes --check-config" "${SNATGW_BIN:-$SNL_BUILD/control/snatgw}" --config "$TEST_TMP/saved.conf" --check-config
check "the saved file has the changed port range" grep -q '^ports = 2000-60000' "$TEST_TMP/saved.conf"
snatctl pool set lab --ports 1024-65535 >/dev/null

check "log level can be changed" snatctl log level debug
snatctl log level info >/dev/null
check "the event log records creations" grep -q ' create udp inside 198.18.0.12:41003 ' "$SNL_DIR/events.log"
check "the event log records the flushed deletions" grep -q ' delete udp inside 198.18.0.12:41003 .* reason flushed' "$SNL_DIR/events.log"
finish
