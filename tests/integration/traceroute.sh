#!/bin/bash
# traceroute through the gateway: hop 1 is the gateway's inside address (ICMP time exceeded
# from the gateway itself), hop 2 the server - with UDP probes and with ICMP echo probes.
source "$(dirname "$0")/lib.sh"
lab_ensure

for mode in udp icmp; do
    flag=""
    [ "$mode" = icmp ] && flag=-I
    out=$(in_ns h1 traceroute -n $flag -q 1 -w 2 -m 5 "$SERVER" 2>&1)
    echo "$out" | sed 's/^/    /'
    hop1=$(awk '$1 == 1 {print $2}' <<<"$out")
    hop2=$(awk '$1 == 2 {print $2}' <<<"$out")
    hops=$(awk '$1 ~ /^[0-9]+$/' <<<"$out" | wc -l)
    check "traceroute ($mode): hop 1 is the gateway $GW_IN (got ${hop1:-nothing})" [ "$hop1" = "$GW_IN" ]
    check "traceroute ($mode): hop 2 is the server $SERVER (got ${hop2:-nothing})" [ "$hop2" = "$SERVER" ]
    check "traceroute ($mode): the server is reached in 2 hops (got $hops)" [ "$hops" -eq 2 ]
done
finish
