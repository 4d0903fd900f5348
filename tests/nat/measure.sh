#!/usr/bin/env bash
# NAT traversal numbers for docs/performance.md, in the topology of run.sh
# (topo.sh): for endpoint-independent mapping ("eim") and MASQUERADE
# --random ("random"),
#   - time from a NATed node's start to its first accepted relay reservation
#     (A and B, from their logs);
#   - time from the relayed connection between B and A to the direct one
#     (hole punching; eim only);
#   - the take round trip seen by the API client: a crossing IOC order
#     placed on B against A's resting sell, POST to answer (median and max
#     of NAT_MEASURE_TAKES takes; direct after punching, relayed under random).
# Needs root. A measurement, not a test: it fails only if the setup does.
# Env: NAT_TEST_BIN (default target/release/peerbook if built, else
#      target/debug/peerbook), NAT_MEASURE_TAKES (default 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=$SECONDS
TMP=$(mktemp -d)
. tests/nat/lib.sh
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces and iptables)"
BIN=${NAT_TEST_BIN:-}
if [ -z "$BIN" ]; then
    BIN=target/debug/peerbook
    [ -x target/release/peerbook ] && BIN=target/release/peerbook
fi
[ -x "$BIN" ] || fail "no binary at $BIN (cargo build --bin peerbook)"
BIN=$(realpath "$BIN")
TAKES=${NAT_MEASURE_TAKES:-20}
trap 'stop_nodes; topo_down; [ "${NAT_MEASURE_KEEP:-0}" = 1 ] || rm -rf "$TMP"' EXIT

# ms between the first lines of LOG matching RE1 and RE2 (their timestamps).
ms_between() { # LOG RE1 RE2
    python3 - "$@" <<'PY'
import re, sys, datetime
log, a, b = sys.argv[1:4]
def first(rx):
    for line in open(log, errors="replace"):
        if re.search(rx, line):
            ts = line.split()[0].rstrip("Z")
            return datetime.datetime.fromisoformat(ts[:26])
    return None
ta, tb = first(a), first(b)
print("-" if ta is None or tb is None else round((tb - ta).total_seconds() * 1000))
PY
}
reservation_ms() { # NODE: since_start_ms of its first accepted reservation
    grep -m1 'relay reservation accepted' "$TMP/$1.log" | sed -n 's/.*since_start_ms=\([0-9]*\).*/\1/p'
}

# median and max of the numbers on stdin
stats() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "- / -"; exit} printf "%d / %d\n", a[int((NR+1)/2)], a[NR]}'; }

declare -A RES=()
for mode in eim random; do
    log "== $mode"
    topo_up "$mode"
    rm -rf "${TMP:?}"/{p,q,a,b} "$TMP"/*.log
    boot=(/ip4/198.18.0.2/tcp/4001 /ip4/198.18.0.2/udp/4001/quic-v1)
    start_node p
    wait_for 20 "P's API" api_up p
    start_node a "${boot[@]}"
    start_node b "${boot[@]}"
    wait_for 60 "A private with a relay" reach_is a private
    wait_for 60 "B private with a relay" reach_is b private
    RES[$mode.res]="$(reservation_ms a) / $(reservation_ms b)"
    pa=$(peer_id a)
    place a sell 100 1000
    wait_for 30 "A's sell on B's book" has_ask b 100
    place b buy 100 1 ioc
    if [ "$mode" = eim ]; then
        wait_for 60 "a direct connection from B to A" is_direct b "$pa"
        # The punch is reported on one side or both: B's log, else A's.
        RES[$mode.punch]=$(ms_between "$TMP/b.log" "peer connected peer=$pa.*relayed=true" "hole punched")
        if [ "${RES[$mode.punch]}" = - ]; then
            RES[$mode.punch]=$(ms_between "$TMP/a.log" "peer connected peer=$(peer_id b).*relayed=true" "hole punched")
        fi
    else
        RES[$mode.punch]="fails (relayed)"
    fi
    connection_to b "$pa"
    RES[$mode.conn]=$CONN
    for _ in $(seq "$TAKES"); do
        in_ns b curl -s -o /dev/null -w '%{time_total}\n' -m 10 -H 'content-type: application/json' \
            -d '{"market":"BTC-USD","side":"buy","price":"100","quantity":"1","time_in_force":"ioc"}' \
            http://127.0.0.1:8080/api/v1/orders
    done | awk '{printf "%d\n", $1 * 1000}' >"$TMP/rt"
    RES[$mode.rt]=$(stats <"$TMP/rt")
    stop_nodes
    mkdir -p "$TMP/logs-$mode" && cp "$TMP"/*.log "$TMP/logs-$mode/"
done

echo
echo "| NAT mapping | start to reservation, A / B (ms) | relayed to direct (ms) | take round trip, median / max (ms) | connection |"
echo "|---|---|---|---|---|"
for mode in eim random; do
    echo "| $mode | ${RES[$mode.res]} | ${RES[$mode.punch]} | ${RES[$mode.rt]} | ${RES[$mode.conn]} |"
done
echo
[ "${NAT_MEASURE_KEEP:-0}" = 1 ] && echo "logs: $TMP/logs-*"
echo "binary: $BIN; $TAKES takes per mapping; $(nproc) cores; $(date -u +%F)"
