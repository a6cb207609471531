#!/bin/bash
# iperf3 TCP through the gateway, bounded: 4 s upload (inside -> server) and 3 s download
# (-R, server -> inside). Verified with iperf3's own accounting: no error, bytes moved > 0, and
# the receiver counted what the sender sent, less at most what was still in flight when the
# test stopped (iperf3 stops counting at the end message: allow 5% or 8 MB, whichever is more).
source "$(dirname "$0")/lib.sh"
lab_ensure

run() {  # label, extra iperf3 args
    local label="$1"; shift
    in_ns h1 timeout 20 iperf3 -c "$SERVER" -J "$@" > "$TEST_TMP/$label.json" 2>&1
    python3 - "$TEST_TMP/$label.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("0 0 0 0 unparsable:", e)
    sys.exit()
if "error" in r:
    print("0 0 0 0", r["error"].replace(" ", "_"))
    sys.exit()
s, rc = r["end"]["sum_sent"], r["end"]["sum_received"]
print(s["bytes"], rc["bytes"], int(rc["bits_per_second"] / 1e6), s.get("retransmits", 0), "-")
PY
}

for spec in "upload:-t 4" "download:-t 3 -R"; do
    label=${spec%%:*}
    # shellcheck disable=SC2086
    read -r sent received mbps retrans err <<<"$(run "$label" ${spec#*:})"
    say "$label: sent $sent bytes, received $received, $mbps Mbit/s, $retrans retransmits ${err/-/}"
    check "$label: iperf3 ran without error" [ "$err" = "-" ]
    check "$label: bytes moved > 0" [ "${received:-0}" -gt 0 ]
    slack=$(( ${sent:-0} / 20 > 8388608 ? ${sent:-0} / 20 : 8388608 ))
    short=$(( ${sent:-0} - ${received:-0} ))
    check "$label: receiver counted what the sender sent (short by $short <= $slack bytes in flight)" \
        [ "$short" -le "$slack" -a "$short" -ge 0 ]
done
finish
