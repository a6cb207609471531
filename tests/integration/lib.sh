# shellcheck shell=bash disable=SC2034
# Shared by the integration tests (sourced, not run): bring the lab up in the wanted mode,
# run commands in its namespaces, record checks, exit 0 (all passed), 1 (a check failed) or
# 77 (cannot run here: not root, or snatgw not built; meson counts it as skipped).
#
# Environment:
#   SNL_GATEWAY    snatgw (default) | kernel - the gateway under test
#   SNL_LAB_ARGS   extra `tools/lab up` arguments (e.g. "--workers 2 --vdev af_packet")
#   SNL_KEEP_LAB   1: leave a lab this test brought up running at the end
#   SNL_KEEP_TMP   1: keep the test's scratch directory (/tmp/snl-test-NAME.*: captures, JSON)
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
skip() { printf '[%s] SKIP - %s\n' "$TEST_NAME" "$*"; exit 77; }
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
    if [ -f "$SNL_DIR/state/mode" ] && [ "$current" = "$want" ]; then
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
