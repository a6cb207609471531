#!/bin/bash
# The daemon's command line and start-up errors: --help documents every option, --check-config
# accepts the shipped configuration and rejects bad files with a message naming the option, and
# start-up failures (port missing, not enough memory, bad queue count) are one clear message
# and a non-zero exit, never a crash or a hang. Needs no lab.
set -u
BIN="${SNATGW_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/control/snatgw}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TMP="$(mktemp -d /tmp/snatgw-cli.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
[ -x "$BIN" ] || { echo "snatgw not built at $BIN"; exit 77; }
failures=0
checks=0
ok() { checks=$((checks + 1)); echo "[daemon_cli] ok   - $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "[daemon_cli] FAIL - $*"; }

# expect RC "description" PATTERN -- command...: exit code and a line of output matching.
expect() {
    local rc="$1" what="$2" pattern="$3"; shift 4
    local out got
    out=$(timeout 60 "$@" 2>&1 </dev/null); got=$?
    if [ "$got" -eq "$rc" ] && grep -qE -- "$pattern" <<<"$out"; then
        ok "$what (exit $got)"
    else
        fail "$what: wanted exit $rc and /$pattern/, got exit $got:"
        echo "$out" | grep -vE '^(EAL|TELEMETRY|libbpf|libxdp)' | tail -5 | sed 's/^/    /'
    fi
}

expect 0 "--help lists the options" "dataplane.workers" -- "$BIN" --help
for opt in dataplane.idle_sleep_us inside.device outside.gateway control.socket nat.rule; do
    "$BIN" --help | grep -q -- "$opt" && ok "--help documents $opt" || fail "--help lacks $opt"
done
expect 0 "the shipped conf/snatgw.conf is valid" "configuration OK" -- \
    "$BIN" --config "$ROOT/conf/snatgw.conf" --check-config

bad() {  # bad NAME PATTERN CONTENT: a file with CONTENT is refused, naming the problem
    printf '%b' "$3" > "$TMP/$1.conf"
    expect 2 "bad file ($1) refused" "$2" -- "$BIN" --config "$TMP/$1.conf" --check-config
}
base='[inside]\ndevice = net_af_packet0,iface=a\naddress = 198.18.0.1/24\n[outside]\ndevice = net_af_packet1,iface=b\naddress = 198.19.0.1/24\n[pool.p]\naddresses = 198.19.0.10\n[nat]\nrule = 198.18.0.0/24 p\n'
bad typo "wokers" "[dataplane]\nwokers = 2\n$base"
bad address "198.19.0.300" "${base/198.19.0.10/198.19.0.300}"
bad gateway "gateway" "${base/address = 198.19.0.1\/24/address = 198.19.0.1/24\\ngateway = 198.20.0.1}"
bad unknown_pool "nope" "${base/rule = 198.18.0.0\/24 p/rule = 198.18.0.0/24 nope}"
bad steering "steering" "[dataplane]\nsteering = magic\n$base"
bad number "workers" "[dataplane]\nworkers = two\n$base"
bad policy "policy" "${base/addresses = 198.19.0.10/addresses = 198.19.0.10\\npolicy = lenient}"
bad no_device "device" "${base/device = net_af_packet0,iface=a\\n/}"
expect 2 "missing file refused" "no-such-file" -- "$BIN" --config "$TMP/no-such-file.conf" --check-config
expect 2 "bad command-line value refused" "dataplane.burst" -- \
    "$BIN" --config "$ROOT/conf/snatgw.conf" --dataplane.burst 0 --check-config
expect 2 "unknown command-line option refused" "frobnicate" -- \
    "$BIN" --config "$ROOT/conf/snatgw.conf" --frobnicate 1 --check-config

# Start-up errors: DPDK comes up (no hugepages needed) but the ports cannot.
eal=(-- --no-huge -m 256 --no-shconf --no-telemetry --log-level lib.eal:error)
expect 1 "a missing port interface: clear message" "inside port: device 'net_af_packet0' not found" -- \
    "$BIN" --config "$ROOT/conf/snatgw.conf" --inside.device net_af_packet0,iface=snl-none0 \
    --outside.device net_af_packet1,iface=snl-none1 "${eal[@]}"
expect 1 "not enough memory for DPDK: clear message with the hugepage hint" "hugepages" -- \
    "$BIN" --config "$ROOT/conf/snatgw.conf" -- --in-memory -m 1000000 --no-telemetry
# A port with fewer queues than workers (af_packet on loopback, 2 queue pairs asked of 1).
ip link show lo >/dev/null 2>&1 && expect 1 "more workers than the port has queues: clear message" \
    "queues" -- "$BIN" --config "$ROOT/conf/snatgw.conf" --dataplane.workers 2 \
    --inside.device net_af_packet0,iface=lo,qpairs=1 --outside.device net_af_packet1,iface=lo,qpairs=1 \
    -- --no-huge -m 256 --no-shconf --no-telemetry --lcores '0@0,1@0,2@0'

echo "[daemon_cli] $((checks - failures)) of $checks checks passed"
[ "$failures" -eq 0 ]
