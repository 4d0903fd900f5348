#!/usr/bin/env bash
# End-to-end test of NAT traversal in network namespaces (README, "Behind NAT").
#
# Two public nodes P and Q on a simulated internet, node A (maker) behind one
# NAT router and node B (taker) behind another, no port forwards
# (topo.sh). Twice: with endpoint-independent mapping ("eim") and with
# MASQUERADE --random ("random"). Each time it checks, through each node's API:
#   1. P finds itself public; A and B find themselves private and hold a
#      relay reservation;
#   2. A's sell rests on every node; B's crossing buy fills against it (a
#      NATed taker reaching a NATed maker, through the relay);
#   3. eim: the connection between A and B ends direct (hole punched);
#      random: they still trade, through the relay;
#   4. Q, started after A's order rested, fills against it too;
#   5. no order is left taking, and every node has the same book digest;
# and /metrics counts the relay's reservations and the hole punches.
# Needs root (namespaces, iptables); never reaches outside its namespaces.
# Env: NAT_TEST_BIN (default target/debug/peerbook, built if missing),
#      NAT_TEST_MODES (default "eim random"), NAT_TEST_KEEP=1 (leave
#      the namespaces and logs after a failure).
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=$SECONDS
TMP=$(mktemp -d)
. tests/nat/lib.sh

[ "$(id -u)" = 0 ] || fail "needs root (network namespaces and iptables)"
for tool in ip iptables curl jq; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is needed"
done
BIN=${NAT_TEST_BIN:-target/debug/peerbook}
if [ ! -x "$BIN" ]; then
    log "building $BIN"
    cargo build --bin peerbook >&2 || fail "cannot build the peerbook binary"
fi
BIN=$(realpath "$BIN")

cleanup() {
    stop_nodes
    if [ "${NAT_TEST_KEEP:-0}" = 1 ] && [ "${OK:-0}" = 0 ]; then
        log "kept the namespaces ($NS_PREFIX-*) and the logs in $TMP"
    else
        topo_down
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

scenario() { # MODE
    local mode=$1 pa pb pq
    log "== scenario $mode: topology up"
    topo_up "$mode"
    rm -rf "${TMP:?}"/{p,q,a,b} "$TMP"/*.log
    # P over TCP and over QUIC: each connection shows a node its public
    # address on that transport, which punching needs.
    local boot=(/ip4/198.18.0.2/tcp/4001 /ip4/198.18.0.2/udp/4001/quic-v1)
    start_node p
    wait_for 20 "P's API" api_up p
    start_node a "${boot[@]}"
    start_node b "${boot[@]}"
    wait_for 20 "A's API" api_up a
    wait_for 20 "B's API" api_up b
    pa=$(peer_id a)
    pb=$(peer_id b)

    wait_for 60 "P public" reach_is p public
    wait_for 60 "A private with a relay reservation" reach_is a private
    wait_for 60 "B private with a relay reservation" reach_is b private
    log "P public; A and B private, each with a relay reservation"
    in_ns a "$BIN" status >"$TMP/status.txt" 2>&1 || fail "peerbook status on A failed: $(cat "$TMP/status.txt")"
    grep -q "^reach: *private, reachable through relays " "$TMP/status.txt" ||
        fail "peerbook status on A does not say it is private behind a relay: $(cat "$TMP/status.txt")"
    wait_for 10 "P counting the reservations it holds" metric_at_least p peerbook_nat_relay_reservations 2
    wait_for 10 "A counting its reservation" metric_at_least a peerbook_nat_reservations_held 1

    place a sell 100 1
    local sell=$ORDER
    wait_for 30 "A's sell on P's book" has_ask p 100
    wait_for 30 "A's sell on B's book" has_ask b 100

    place b buy 100 0.4
    local buy=$ORDER
    wait_for 30 "B's buy filled from A" order_is b "$buy" filled
    log "B (behind NAT) filled 0.4 from A (behind NAT)"

    if [ "$mode" = eim ]; then
        wait_for 60 "a direct (hole-punched) connection from B to A" is_direct b "$pa"
        log "B and A are connected directly (hole punched)"
        in_ns b "$BIN" peers >"$TMP/peers.txt" 2>&1 || fail "peerbook peers on B failed: $(cat "$TMP/peers.txt")"
        grep -Eq "^$pa +yes( \(direct\+relayed\))? " "$TMP/peers.txt" ||
            fail "peerbook peers on B does not show A connected directly: $(cat "$TMP/peers.txt")"
        metric a peerbook_nat_holepunch_successes_total
        local punched=$VALUE
        metric b peerbook_nat_holepunch_successes_total
        [ "$((punched + VALUE))" -ge 1 ] || fail "no hole punch success counted in A's or B's /metrics"
    else
        connection_to b "$pa"
        [ "$CONN" = relayed ] || fail "B to A should be relayed under random mapping, is $CONN"
        log "B to A: relayed (punching cannot work through random mapping)"
        place b buy 100 0.1
        wait_for 30 "B's second buy filled through the relay" order_is b "$ORDER" filled
        log "B filled again from A with the routers mapping at random"
    fi

    start_node q "${boot[@]}"
    wait_for 20 "Q's API" api_up q
    wait_for 60 "A's sell on Q's book" has_ask q 100
    place q buy 100 0.3
    wait_for 30 "Q's buy filled from A" order_is q "$ORDER" filled
    log "Q, started after the order rested, filled 0.3 from A"

    local filled=2
    [ "$mode" = random ] && filled=3
    wait_for 30 "the trades on every node" trades_are "$filled" p q a b
    wait_for 30 "no order left taking" no_order_taking p q a b
    wait_for 30 "one digest everywhere" one_digest p q a b
    log "scenario $mode: $filled trades everywhere, nothing taking, $WHY"
    order_is a "$sell" open || fail "A's sell should still be open (partly filled): $WHY"
    stop_nodes
}

for mode in ${NAT_TEST_MODES:-eim random}; do
    scenario "$mode"
done
OK=1
log "NAT end to end: passed in $((SECONDS - T0)) s"
