# shellcheck shell=bash disable=SC2034
# Shared by the integration tests (sourced, not run): bring the lab up in the wanted mode,
# run commands in its namespaces, record checks, exit 0 (all passed), 1 (a check failed) or
# 77 (cannot run here: not root, or snatgw not built; meson counts it as skipped, and
# tools/test under CI=true as failed). A skip after a check has run is a failure (exit 1): a
# test that has started checking must not end as "skipped".
#
# Environment:
#   SNL_GATEWAY    snatgw (default) | kernel - the gateway under test
#   SNL_LAB_ARGS   extra `tools/lab up` arguments (e.g. "--workers 2 --vdev af_packet")
#   SNL_KEEP_LAB   1: leave a lab this test brought up running at the end
#   SNL_KEEP_TMP   1: keep the test's scratch directory (/tmp/snl-test-NAME.*: captures, JSON)
#   SNL_LAB_FRESH  1: lab_ensure always brings up a lab of its own, even when one with the same
#                  arguments is up (lab_fresh does this for the tests that need a fresh lab)
#   SNL_DIR, SNL_BUILD, SNATGW_BIN, SNL_RACE_DIR: as for tools/lab
#
# A test reuses a lab that is already up with exactly the arguments it wants (so a runner can
# bring it up once); otherwise it brings up its own and takes it down when it ends.

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SNATGW_ROOT="$(cd "$TESTS_DIR/../.." && pwd)"
LAB="$SNATGW_ROOT/tools/lab"
export SNL_DIR="${SNL_DIR:-/tmp/snl}"
export SNL_BUILD="${SNL_BUILD:-$SNATGW_ROOT/build}"
SNL_GATEWAY="${SNL_GATEWAY:-snatgw}"
SNL_LAB_ARGS="${SNL_LAB_ARGS:-}"
SERVER=198.19.0.2
# Debian's python3 (python3-scapy is installed for it, not for another python on PATH).
PY3=/usr/bin/python3
[ -x "$PY3" ] || PY3=python3
GW_IN=198.18.0.1
TEST_NAME="$(basename "$0" .sh)"
TEST_TMP="$(mktemp -d "/tmp/snl-test-$TEST_NAME.XXXXXX")"
_failures=0
_checks=0
_own_lab=0
_bg_pids=()

say() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
ok() { _checks=$((_checks + 1)); printf '[%s] ok   - %s\n' "$TEST_NAME" "$*"; }
fail() { _checks=$((_checks + 1)); _failures=$((_failures + 1)); printf '[%s] FAIL - %s\n' "$TEST_NAME" "$*"; }
skip() {
    if [ "$_checks" -gt 0 ]; then
        _failures=$((_failures + 1))
        printf '[%s] FAIL - skipped after %d check(s) had run (%d failed before): %s\n' \
            "$TEST_NAME" "$_checks" "$((_failures - 1))" "$*"
        exit 1
    fi
    printf '[%s] SKIP - %s\n' "$TEST_NAME" "$*"
    exit 77
}
# check "description" command...: ok if the command succeeds.
check() { local d="$1"; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }

# The namespace of a short name: h1..hN, srv, gw, sw-in.
ns_of() {
    case "$1" in snl-*) echo "$1" ;; gw) echo snl-gw ;; srv) echo snl-srv ;; sw-in) echo snl-sw-in ;; *) echo "snl-$1" ;; esac
}
# Run in a lab namespace. For a background process whose PID matters, call
# `ip netns exec "$(ns_of NAME)" ...` directly: `ip netns exec` execs the command, a function
# run with & would be a subshell.
in_ns() { local ns; ns=$(ns_of "$1"); shift; ip netns exec "$ns" "$@"; }

host_count() { cat "$SNL_DIR/state/hosts" 2>/dev/null || echo 4; }

race_bin() {
    local p
    for p in "${SNL_RACE_DIR:+$SNL_RACE_DIR/$1}" "$SNL_BUILD/tools/race/$1" "$SNL_BUILD/tools/$1"; do
        if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    return 1
}

# Start a background command (killed by PID at exit if still running).
bg() { "$@" & _bg_pids+=($!); }

_cleanup() {
    local rc=$?
    local p
    for p in "${_bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    if [ "$_own_lab" = 1 ] && [ "${SNL_KEEP_LAB:-0}" != 1 ]; then
        "$LAB" down >/dev/null 2>&1 || true
    fi
    [ -n "${SNL_KEEP_TMP:-}" ] || rm -rf "$TEST_TMP"
    exit "$rc"
}
trap _cleanup EXIT

# The lab, up with --gateway $SNL_GATEWAY $SNL_LAB_ARGS and the given extra arguments.
lab_ensure() {
    [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
    if [ "$SNL_GATEWAY" = snatgw ]; then
        [ -n "${SNATGW_BIN:-}" ] || [ -x "$SNL_BUILD/control/snatgw" ] || [ -x "$SNL_BUILD/snatgw" ] \
            || skip "snatgw is not built in $SNL_BUILD"
    fi
    local want current
    want="$(echo "--gateway $SNL_GATEWAY $SNL_LAB_ARGS $*" | tr -s ' ' | sed 's/ $//')"
    current="$(cat "$SNL_DIR/state/args" 2>/dev/null || true)"
    if [ "${SNL_LAB_FRESH:-0}" != 1 ] && [ -f "$SNL_DIR/state/mode" ] && [ "$current" = "$want" ]; then
        say "using the lab that is up ($want)"
        return 0
    fi
    say "lab: tools/lab up $want"
    "$LAB" down >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    if ! "$LAB" up $want; then
        fail "tools/lab up $want"
        exit 1
    fi
    _own_lab=1
}

# A fresh lab: brought up now, whatever is up (nothing an earlier test left - TIME_WAIT sockets,
# sessions, ARP entries, held ports - weighs on this one).
lab_fresh() { SNL_LAB_FRESH=1 lab_ensure "$@"; }

lab_mode() { cat "$SNL_DIR/state/mode" 2>/dev/null; }
pool_first() { local p; p=$(cat "$SNL_DIR/state/pool"); echo "${p%-*}"; }
# True if $1 is an address of the lab's pool.
in_pool() {
    local p first last a
    p=$(cat "$SNL_DIR/state/pool"); first=${p%-*}; last=${p#*-}
    [ "${1%.*}" = "${first%.*}" ] || return 1
    a=${1##*.}
    [ "$a" -ge "${first##*.}" ] && [ "$a" -le "${last##*.}" ]
}

# Drop and error counters of every interface of the lab (and the veth XDP statistics of the
# gateway's ends), one "ns/dev/counter value" per line: snapshot before and after a test, and
# drop_deltas shows where packets were lost when a test lost some.
drop_counters() {
    local ns dev c
    for ns in $(ip netns list | awk '{print $1}' | grep '^snl-'); do
        for dev in $(ip netns exec "$ns" ls /sys/class/net); do
            [ "$dev" = lo ] && continue
            for c in rx_dropped tx_dropped rx_errors tx_errors; do
                echo "$ns/$dev/$c $(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/$c")"
            done
        done
    done
    for dev in snatgw-in snatgw-out; do
        ip netns exec snl-gw ethtool -S "$dev" 2>/dev/null | awk -v d="$dev" \
            'tolower($1) ~ /drop|err|full|fail/ {sub(":", "", $1); print "snl-gw/" d "/" $1, $2}'
    done
}
drop_deltas() {  # before-file after-file: the counters that grew
    awk 'NR == FNR {b[$1] = $2; next} ($2 - b[$1]) > 0 {printf "%s+%d ", $1, $2 - b[$1]}' "$1" "$2"
}

# ---- TCP stack counters (nstat) of the lab's namespaces ------------------------------------
# What the seed tests assert on and report. On the inside hosts: SYNs sent again
# (TcpExtTCPSynRetrans: a SYN or SYN-ACK lost). On the server: SYNs rejected by a TIME_WAIT
# socket on their timestamp (TcpExtPAWSTimewait: a (public address, port) pair reused while
# the server still held the old connection), and, for context, TIME_WAIT entries
# (TcpExtTW*), SYN cookies, accept-queue overflows, challenge ACKs.
HOST_TCP_COUNTERS=(TcpExtTCPSynRetrans)
SERVER_TCP_COUNTERS=(TcpExtPAWSTimewait TcpExtPAWSEstab TcpExtTW TcpExtTWRecycled TcpExtTWKilled
    TcpExtSyncookiesSent TcpExtSyncookiesRecv TcpExtSyncookiesFailed TcpExtListenOverflows
    TcpExtListenDrops TcpExtTCPChallengeACK TcpExtTCPTimeWaitOverflow)

# One absolute counter (0 when the kernel has none of that name). nstat -s: no history file.
tcp_counter() { in_ns "$1" nstat -asz "$2" 2>/dev/null | awk -v n="$2" '$1 == n {v = $2} END {print v + 0}'; }

# Every host's and the server's counters into FILE, one "ns counter value" a line.
tcp_snapshot() {
    local file="$1" i n
    n=$(host_count)
    : > "$file"
    for ((i = 1; i <= n; i++)); do
        in_ns "h$i" nstat -asz "${HOST_TCP_COUNTERS[@]}" 2>/dev/null | awk -v ns="snl-h$i" '$1 ~ /^Tcp/ {print ns, $1, $2}' >> "$file"
    done
    in_ns srv nstat -asz "${SERVER_TCP_COUNTERS[@]}" 2>/dev/null | awk '$1 ~ /^Tcp/ {print "snl-srv", $1, $2}' >> "$file"
}

# before after COUNTER [NS_PREFIX]: the increase, summed over the namespaces whose name starts
# with NS_PREFIX (default: every one that has it).
tcp_delta() {
    awk -v c="$3" -v p="${4:-}" 'NR == FNR {b[$1 " " $2] = $3; next}
        $2 == c && (p == "" || index($1, p) == 1) {d += $3 - b[$1 " " $2]} END {print d + 0}' "$1" "$2"
}

# before after: the server's counters that moved, "name+N ..." (or "none").
server_tcp_moved() {
    local c d out=""
    for c in "${SERVER_TCP_COUNTERS[@]}"; do
        d=$(tcp_delta "$1" "$2" "$c" snl-srv)
        [ "$d" != 0 ] && out+="$c+$d "
    done
    echo "${out:-none}"
}

# ---- the gateway's counters ----------------------------------------------------------------
SNATCTL="${SNATCTL:-$SNL_BUILD/tools/snatctl/snatctl}"

# The gateway's counters, indented: snatgw's report (tools/lab counters, the SIGUSR1 report)
# and a line from its control socket (snatctl --json stats: drops and control counters that are
# not zero); the kernel's conntrack -S summed over CPUs and conntrack -C.
gateway_report() {
    if [ "$(lab_mode)" = kernel ]; then
        say "kernel conntrack -S (summed over CPUs): $(in_ns gw conntrack -S 2>/dev/null | awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } } END { printf "found=%d insert=%d insert_failed=%d drop=%d early_drop=%d clash_resolve=%d invalid=%d error=%d search_restart=%d", s["found"], s["insert"], s["insert_failed"], s["drop"], s["early_drop"], s["clash_resolve"], s["invalid"], s["error"], s["search_restart"] }'); entries: $(in_ns gw conntrack -C 2>/dev/null || echo '?')"
        return 0
    fi
    say "snatgw counters (tools/lab counters):"
    "$LAB" counters 2>&1 | grep -vE '^ports_in_use: .* tcp=0 udp=0 icmp=0 ' | sed 's/^/    /'
    if [ -x "$SNATCTL" ]; then
        say "snatctl --json stats, non-zero drops and control counters: $("$SNATCTL" --socket "$SNL_DIR/snatgw.sock" --timeout 5 --json stats 2>/dev/null | "$PY3" -c '
import json, sys
s = json.load(sys.stdin)
out = []
for sec in ("drops", "control"):
    for k, v in (s.get(sec) or {}).items():
        if isinstance(v, (int, float)) and v:
            out.append(f"{sec}.{k}={v}")
t = s.get("total") or {}
for k, v in t.items():
    if isinstance(v, (int, float)) and v and any(w in k for w in ("reuse", "reclaim", "evict", "insert_failed", "exhaust")):
        out.append(f"total.{k}={v}")
print(" ".join(out) or "none")' 2>/dev/null || echo unavailable)"
    fi
}

# Exit with the verdict (no check at all is a failure: the test did not get to its checks).
finish() {
    [ "$_checks" -gt 0 ] || fail "no check was made"
    if [ "$_failures" -eq 0 ]; then
        say "PASS: $_checks checks ($(lab_mode) gateway)"
        exit 0
    fi
    say "FAILED: $_failures of $_checks checks ($(lab_mode) gateway)"
    exit 1
}
