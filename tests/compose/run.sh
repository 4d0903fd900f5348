#!/usr/bin/env bash
# End-to-end test of the docker-compose cluster (README, "docker-compose").
#
# Builds the image (scripts/compose-image), brings node1..node3 up from a
# clean state and checks, through each node's published API:
#   1. every node has two peers and is healthy;
#   2. a sell on node1 and a crossing buy on node3 make one trade, seen by all;
#   3. node2, stopped and started, keeps its peer id and its resting order;
#   4. node3, cut off the network (docker network disconnect) while node1 and
#      node2 trade, place and cancel, comes back (connect) to the same book
#      digests (per market) and the same trade ids as the others;
#   5. node4 (profile mdns, no bootstrap) joins through mDNS alone and ends
#      with the same books and trades.
# The cluster is torn down (down -v) at the end, also when a step fails; a
# failure prints the nodes' logs first. Works with `docker compose` and
# `docker-compose` (PEERBOOK_COMPOSE="docker-compose" forces one). It never
# skips: without a Docker engine it fails and says why.
#
# Env: PEERBOOK_E2E_PROJECT (compose project, default peerbooke2e),
#      PEERBOOK_NODE{1..4}_PORT (published API ports, default 8081..8084),
#      PEERBOOK_E2E_KEEP=1 (leave the cluster up after a failure).
set -euo pipefail
cd "$(dirname "$0")/../.."

T0=$SECONDS
log() { printf '[compose-e2e %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
fail() {
    log "FAIL: $*"
    exit 1
}

# ---- tools ------------------------------------------------------------------

command -v docker >/dev/null 2>&1 ||
    fail "no 'docker' command: this test needs a Docker engine with 'docker compose' or 'docker-compose'"
if ! docker info >/dev/null 2>&1; then
    fail "the Docker engine does not answer ('docker info': $(docker info 2>&1 | tail -n 1))"
fi
if [ -n "${PEERBOOK_COMPOSE:-}" ]; then
    read -r -a COMPOSE <<<"$PEERBOOK_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    fail "neither 'docker compose' (plugin) nor 'docker-compose' is installed"
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is needed (apt-get install $tool)"
done
log "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version 2>/dev/null | head -n 1))"

# ---- the cluster ------------------------------------------------------------

# No dash: docker-compose 1.x strips it from project names, 2.x keeps it, so
# this name is the same label, network and volume prefix for both.
PROJECT=${PEERBOOK_E2E_PROJECT:-peerbooke2e}
TMP=$(mktemp -d)
export PEERBOOK_API_TOKEN="e2e-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
# mDNS discoveries (net::discovered) and redials (the network loop) are
# logged at debug.
export RUST_LOG='info,libp2p_kad=error,peerbook::net::event_loop=debug,peerbook::net::discovered=debug'
declare -A PORT=(
    [node1]=${PEERBOOK_NODE1_PORT:-8081} [node2]=${PEERBOOK_NODE2_PORT:-8082}
    [node3]=${PEERBOOK_NODE3_PORT:-8083} [node4]=${PEERBOOK_NODE4_PORT:-8084}
)
export PEERBOOK_NODE1_PORT=${PORT[node1]} PEERBOOK_NODE2_PORT=${PORT[node2]}
export PEERBOOK_NODE3_PORT=${PORT[node3]} PEERBOOK_NODE4_PORT=${PORT[node4]}

# Compose for the base cluster (node1..3), and with the mdns profile (node4).
dc() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml "$@"; }
dc_all() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml --profile mdns "$@"; }

# Remove whatever this project left behind, even if the compose file changed.
remove_project() {
    dc_all down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    local label="label=com.docker.compose.project=$PROJECT" ids
    ids=$(docker ps -aq --filter "$label")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    ids=$(docker volume ls -q --filter "$label")
    [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
    ids=$(docker network ls -q --filter "$label")
    [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1 || true
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ]; then
        log "the test failed (status $rc); the cluster as it was:"
        dc_all ps >&2 || true
        for node in node1 node2 node3 node4; do
            local cid
            cid=$(dc_all ps -q "$node" 2>/dev/null || true)
            [ -n "$cid" ] || continue
            printf '\n----- logs of %s (%s) -----\n' "$node" "$cid" >&2
            docker logs -t --tail 400 "$cid" >&2 2>&1 || true
        done
        printf '\n' >&2
    fi
    if [ "$rc" -ne 0 ] && [ "${PEERBOOK_E2E_KEEP:-}" = 1 ]; then
        log "PEERBOOK_E2E_KEEP=1: leaving project $PROJECT up (token $PEERBOOK_API_TOKEN)"
    else
        log "tearing down (down -v)"
        remove_project
    fi
    rm -rf "$TMP"
    [ "$rc" -eq 0 ] && log "PASS (${SECONDS}s)"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- talking to the nodes ---------------------------------------------------

# req NODE METHOD PATH [JSON]: sets CODE (000 when the node does not answer)
# and BODY.
req() {
    local node=$1 method=$2 path=$3 body=${4:-}
    local args=(-sS -m 10 -X "$method" -o "$TMP/body" -w '%{http_code}'
        -H "authorization: Bearer $PEERBOOK_API_TOKEN")
    [ -z "$body" ] || args+=(-H 'content-type: application/json' --data "$body")
    : >"$TMP/body"
    CODE=$(curl "${args[@]}" "http://127.0.0.1:${PORT[$node]}$path" 2>"$TMP/curl.err") || CODE=000
    BODY=$(cat "$TMP/body")
    [ "$CODE" != 000 ] || BODY="no answer: $(tail -n 1 "$TMP/curl.err")"
}

# py CODE [ARG...]: run python with the last BODY parsed as `d` (the ARGs
# are sys.argv[2:]).
py() {
    local code=$1
    shift
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); $code" "$BODY" "$@"
}

# must NODE METHOD PATH [JSON] EXPECTED_CODE: a request that has to succeed.
must() {
    local expected=${*: -1}
    req "${@:1:$#-1}"
    [ "$CODE" = "$expected" ] ||
        fail "$1 $2 $3 answered $CODE (expected $expected): $BODY"
}

# wait_for DESCRIPTION SECONDS CHECK...: poll CHECK every second until it
# succeeds; on the deadline fail with the description and WHY (what the check
# saw last).
wait_for() {
    local what=$1 limit=$2 start=$SECONDS
    shift 2
    WHY=""
    until "$@"; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            fail "timed out after ${limit}s waiting until $what; last seen: ${WHY:-nothing}"
        fi
        sleep 1
    done
    log "ok: $what ($((SECONDS - start))s)"
}

# Checks for wait_for: return 0 when true, else set WHY.
peers_at_least() { # N NODE...
    local n=$1 node count
    shift
    WHY=""
    for node in "$@"; do
        req "$node" GET /api/v1/status
        if [ "$CODE" != 200 ]; then
            WHY="$node: status answered $CODE $BODY"
            return 1
        fi
        count=$(py 'print(d["peer_count"])')
        WHY="$WHY $node=$count"
        [ "$count" -ge "$n" ] || { WHY="peer counts:$WHY"; return 1; }
    done
}

peers_exactly() { # N NODE...
    local n=$1 node count
    shift
    WHY=""
    for node in "$@"; do
        req "$node" GET /api/v1/status
        if [ "$CODE" != 200 ]; then
            WHY="$node: status answered $CODE $BODY"
            return 1
        fi
        count=$(py 'print(d["peer_count"])')
        WHY="$WHY $node=$count"
        [ "$count" -eq "$n" ] || { WHY="peer counts:$WHY"; return 1; }
    done
}

# inside CONTAINER: the node's status from inside its container (its
# published port is gone while it is off the network), in BODY.
inside() {
    BODY=$(docker exec "$1" /usr/local/bin/peerbook status --api http://127.0.0.1:8080 --json 2>&1) || {
        WHY="peerbook status in $1: $BODY"
        return 1
    }
}

peers_inside() { # N CONTAINER
    inside "$2" || return 1
    local count
    count=$(py 'print(d["peer_count"])')
    WHY="peer count $count"
    [ "$count" -eq "$1" ]
}

healthy() { # NODE...
    local node cid state
    WHY=""
    for node in "$@"; do
        cid=$(dc_all ps -q "$node")
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}no healthcheck{{end}}' "$cid" 2>&1)
        WHY="$WHY $node=$state"
        [ "$state" = healthy ] || return 1
    done
}

api_up() { # NODE
    req "$1" GET /api/v1/status
    WHY="$1: $CODE $BODY"
    [ "$CODE" = 200 ]
}

# A one-line summary of what NODE holds: each market's digest and order
# count, and the ids of its trades; in SUMMARY (empty if the node does not
# answer).
summarize() { # NODE
    local node=$1 part m
    SUMMARY=""
    for m in BTC-USD ETH-USD; do
        req "$node" GET "/api/v1/book/$m"
        [ "$CODE" = 200 ] || { SUMMARY=""; WHY="$node: book $m answered $CODE $BODY"; return 1; }
        part=$(py 'print(d["market"] + "=" + d["digest"] + "(" + str(d["orders"]) + " orders)")')
        SUMMARY="$SUMMARY $part"
    done
    req "$node" GET "/api/v1/trades?limit=1000"
    [ "$CODE" = 200 ] || { SUMMARY=""; WHY="$node: trades answered $CODE $BODY"; return 1; }
    part=$(py 'print("trades=" + ",".join(sorted(t["id"] for t in d)))')
    SUMMARY="$SUMMARY $part"
}

converged() { # NODE...: the same digests per market and the same trade ids
    local node first="" all="" same=1
    WHY=""
    for node in "$@"; do
        summarize "$node" || return 1
        all="$all | $node:$SUMMARY"
        [ -n "$first" ] || first=$SUMMARY
        [ "$SUMMARY" = "$first" ] || same=0
    done
    WHY="not the same books and trades:$all"
    [ "$same" = 1 ]
}

trades_are() { # N NODE...: every node lists exactly N trades
    local n=$1 node count
    shift
    WHY=""
    for node in "$@"; do
        req "$node" GET "/api/v1/trades?limit=1000"
        [ "$CODE" = 200 ] || { WHY="$node: trades answered $CODE $BODY"; return 1; }
        count=$(py 'print(len(d))')
        WHY="$WHY $node=$count"
        [ "$count" = "$n" ] || { WHY="trade counts:$WHY"; return 1; }
    done
}

book_has_order_at() { # NODE MARKET SIDE PRICE: a level at PRICE on SIDE
    req "$1" GET "/api/v1/book/$2"
    WHY="$1 book $2: $CODE $BODY"
    [ "$CODE" = 200 ] || return 1
    py 'from decimal import Decimal as D
side = "asks" if sys.argv[2] == "sell" else "bids"
sys.exit(0 if any(D(p) == D(sys.argv[3]) for p, q in d[side]) else 1)' "$3" "$4"
}

# place NODE MARKET SIDE PRICE QTY: a limit order; its id in ORDER, its
# status in STATUS.
place() {
    must "$1" POST /api/v1/orders \
        "{\"market\":\"$2\",\"side\":\"$3\",\"price\":\"$4\",\"quantity\":\"$5\"}" 201
    ORDER=$(py 'print(d["id"])')
    STATUS=$(py 'print(d["status"])')
    log "$1 placed $2 $3 $5 @ $4: $ORDER ($STATUS)"
}

container() { dc_all ps -q "$1"; }

logged() { # NODE REGEX: the node's log has a line matching REGEX
    WHY="no line matching '$2' in the log of $1"
    # Not a pipe into grep -q: grep would stop reading at the first match
    # and the pipe (pipefail) would fail on docker's SIGPIPE.
    docker logs "$(container "$1")" >"$TMP/log" 2>&1
    grep -Eq "$2" "$TMP/log"
}

# ---- 0. a clean start -------------------------------------------------------

log "removing leftovers of project $PROJECT"
remove_project
log "building the image (scripts/compose-image)"
scripts/compose-image
log "starting node1..node3 (up -d --build)"
dc up -d --build >&2

# ---- 1. every node has two peers ------------------------------------------

wait_for "node1..node3 each have two peers" 120 peers_at_least 2 node1 node2 node3
wait_for "node1..node3 are healthy (peerbook status healthcheck)" 60 healthy node1 node2 node3
# mDNS finds node1 too; the bootstrap address has to work all the same: the
# dial either connects, or (when mDNS already connected the two both ways)
# gets through DNS and the handshake to be refused by the per-peer
# connection limit (max_established_per_peer = 2).
BOOTSTRAPPED='bootstrap peer reached.*address=/dns4/node1/tcp/4001'
BOOTSTRAPPED+='|address=/dns4/node1/tcp/4001 reason=Dial error: connection denied: connection limit exceeded'
for node in node2 node3; do
    wait_for "$node reached node1 through --bootstrap /dns4/node1/tcp/4001" 30 \
        logged "$node" "$BOOTSTRAPPED"
    grep -q 'bootstrap peer reached' "$TMP/log" ||
        log "($node's bootstrap dial reached node1 but was over the connection limit: mDNS had connected them both ways)"
done
declare -A PEER_ID
for node in node1 node2 node3; do
    must "$node" GET /api/v1/status 200
    PEER_ID[$node]=$(py 'print(d["peer_id"])')
    log "$node is ${PEER_ID[$node]}"
done
# The API refuses requests without the token.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[node1]}/api/v1/status" || true)
[ "$code" = 401 ] || fail "node1 answered $code to a request without the token (expected 401)"

# ---- 2. one trade, seen by all three --------------------------------------

place node1 BTC-USD sell 100 1
SELL=$ORDER
[ "$STATUS" = open ] || fail "node1's sell is $STATUS, expected open: $BODY"
wait_for "node3 sees node1's sell" 30 book_has_order_at node3 BTC-USD sell 100
place node3 BTC-USD buy 100 1
BUY=$ORDER
[ "$STATUS" = filled ] || fail "node3's crossing buy is $STATUS, expected filled: $BODY"
wait_for "node1..node3 each list one trade" 30 trades_are 1 node1 node2 node3
req node2 GET "/api/v1/trades?market=BTC-USD"
py 't = d[0]; assert (t["maker_order_id"], t["taker_order_id"]) == (sys.argv[2], sys.argv[3]), t' "$SELL" "$BUY" ||
    fail "node2's trade is not node3's buy taking node1's sell: $BODY"
must node1 GET "/api/v1/orders/$SELL" 200
[ "$(py 'print(d["status"])')" = filled ] || fail "node1's sell is not filled: $BODY"
wait_for "node1..node3 hold the same books and trades" 30 converged node1 node2 node3

# ---- 3. node2 keeps its identity and orders across a restart ---------------

place node2 ETH-USD buy 50 2
RESTING=$ORDER
[ "$STATUS" = open ] || fail "node2's buy is $STATUS, expected open: $BODY"
wait_for "node1 and node3 see node2's resting buy" 30 converged node1 node2 node3
log "stopping and starting node2"
dc stop -t 10 node2 >&2
dc start node2 >&2
wait_for "node2's API answers again" 60 api_up node2
must node2 GET /api/v1/status 200
[ "$(py 'print(d["peer_id"])')" = "${PEER_ID[node2]}" ] ||
    fail "node2 came back with another peer id: $BODY"
must node2 GET "/api/v1/orders/$RESTING" 200
[ "$(py 'print(d["status"])')" = open ] || fail "node2's resting order is not open after the restart: $BODY"
wait_for "node2's resting buy is on node2's book" 30 book_has_order_at node2 ETH-USD buy 50
wait_for "node2 has two peers again" 60 peers_at_least 2 node2
wait_for "node1..node3 hold the same books and trades after node2's restart" 60 converged node1 node2 node3

# ---- 4. node3 cut off while the others trade -------------------------------

NODE3=$(container node3)
NET=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$NODE3")
NET=${NET%% *}
[ -n "$NET" ] || fail "node3 ($NODE3) is on no network"
log "disconnecting node3 from $NET"
docker network disconnect "$NET" "$NODE3"
T_CUT=$SECONDS

place node1 ETH-USD sell 60 1
PART_SELL=$ORDER
place node2 ETH-USD buy 60 1
[ "$STATUS" = filled ] || fail "node2's buy during the partition is $STATUS, expected filled: $BODY"
place node1 BTC-USD sell 105 2
must node2 DELETE "/api/v1/orders/$RESTING" 200
log "node2 cancelled $RESTING"
wait_for "node1 and node2 each list two trades" 30 trades_are 2 node1 node2
wait_for "node1 and node2 hold the same books and trades" 30 converged node1 node2
must node1 GET "/api/v1/orders/$PART_SELL" 200
[ "$(py 'print(d["status"])')" = filled ] || fail "node1's sell during the partition is not filled: $BODY"

# A cut with no FIN or RST: the nodes notice it when TCP gives up
# retransmitting (about 25 s with the compose file's tcp_retries2). Wait for
# that, so that node3 comes back the way a real partition ends: as a peer
# that was lost, redialled, and pulls the books again.
wait_for "node1 and node2 notice node3 is gone (one peer each)" 120 peers_exactly 1 node1 node2
wait_for "node3 notices it is cut off (no peers; asked with docker exec)" 60 peers_inside 0 "$NODE3"
log "the partition was noticed $((SECONDS - T_CUT))s after the cut"
inside "$NODE3" || fail "node3's API does not answer inside its container: $WHY"
ETH3=$(py 'print(next(b["digest"] for b in d["books"] if b["name"] == "ETH-USD"))')
must node1 GET /api/v1/book/ETH-USD 200
[ "$ETH3" != "$(py 'print(d["digest"])')" ] ||
    fail "node3 holds node1's ETH-USD book although it was cut off (digest $ETH3)"

log "reconnecting node3 to $NET"
docker network connect --alias node3 "$NET" "$NODE3"
T_JOIN=$SECONDS
wait_for "node3's API answers again on its published port" 30 api_up node3
wait_for "node3 has two peers again" 120 peers_at_least 2 node3
wait_for "node1..node3 hold the same books and trades after the partition" 120 converged node1 node2 node3
log "node3 converged $((SECONDS - T_JOIN))s after reconnecting"
trades_are 2 node3 || fail "node3 does not list the two trades: $WHY"

# ---- 5. node4 joins through mDNS alone --------------------------------------

log "starting node4 (profile mdns, no bootstrap)"
dc_all up -d --no-deps node4 >&2
wait_for "node4 has three peers" 90 peers_at_least 3 node4
wait_for "node4 holds the same books and trades as node1..node3" 90 converged node1 node2 node3 node4
logged node4 'found on the LAN' || fail "node4 joined, but its log shows no mDNS discovery ('found on the LAN')"
log "node4 found its peers through mDNS: $(grep -c 'found on the LAN' "$TMP/log") discoveries logged"
wait_for "node4 is healthy" 60 healthy node4
