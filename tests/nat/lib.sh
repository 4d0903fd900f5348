# Helpers of the NAT test: the topology (topo.sh), the nodes and their API.
# Sourced by run.sh and measure.sh, which set BIN, TMP and T0.

# shellcheck source=tests/nat/topo.sh
. "$(dirname "${BASH_SOURCE[0]}")/topo.sh"

log() { printf '[nat %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
fail() {
    log "FAIL: $*"
    for n in "${NODES[@]}"; do
        if [ -f "$TMP/$n.log" ]; then
            echo "---- last lines of node $n's log" >&2
            tail -n 40 "$TMP/$n.log" >&2
        fi
    done
    exit 1
}

declare -A PID=()
export RUST_LOG=${RUST_LOG:-info,libp2p_kad=error,libp2p_swarm=error}

start_node() { # NAME [BOOTSTRAP ADDR...]
    local n=$1 args=() b
    shift
    for b in "$@"; do args+=(--bootstrap "$b"); done
    mkdir -p "$TMP/$n"
    in_ns "$n" "$BIN" node --data-dir "$TMP/$n" \
        --listen /ip4/0.0.0.0/tcp/4001 --listen /ip4/0.0.0.0/udp/4001/quic-v1 \
        --api 127.0.0.1:8080 --no-mdns --no-upnp "${args[@]}" \
        >"$TMP/$n.log" 2>&1 &
    PID[$n]=$!
    START_AT[$n]=$(date +%s%N)
}
declare -A START_AT=()

# Stop every node: the processes in the nodes' namespaces (`ip netns exec`
# may run the node as its child, so its own pid is not enough).
stop_nodes() {
    local n pids
    for n in "${!PID[@]}"; do
        pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill $pids 2>/dev/null || true
        kill "${PID[$n]}" 2>/dev/null || true
    done
    for n in "${!PID[@]}"; do
        wait "${PID[$n]}" 2>/dev/null || true
    done
    PID=()
}

# req NODE METHOD PATH [BODY]: the answer's body in BODY, status in CODE.
req() {
    local args=(-s -o "$TMP/body" -w '%{http_code}' -X "$2" -m 10)
    [ -n "${4:-}" ] && args+=(-H 'content-type: application/json' -d "$4")
    CODE=$(in_ns "$1" curl "${args[@]}" "http://127.0.0.1:8080$3" 2>/dev/null) || CODE=000
    BODY=$(cat "$TMP/body" 2>/dev/null || true)
}
must() { # NODE METHOD PATH BODY WANT
    req "$1" "$2" "$3" "$4"
    [ "$CODE" = "$5" ] || fail "$1 $2 $3 answered $CODE (wanted $5): $BODY"
}
jqb() { jq -r "$@" <<<"$BODY"; }

# wait_for SECS WHAT CMD...: run CMD every 0.2 s until it succeeds; WHY
# (set by CMD) says what was last seen.
wait_for() {
    local secs=$1 what=$2 end
    shift 2
    end=$((SECONDS + secs))
    WHY=""
    until "$@"; do
        [ $SECONDS -lt $end ] || fail "$what not within ${secs}s: $WHY"
        sleep 0.2
    done
}

api_up() { req "$1" GET /api/v1/status; WHY="$1: $CODE"; [ "$CODE" = 200 ]; }

reach_is() { # NODE public|private [with relays]
    req "$1" GET /api/v1/status
    [ "$CODE" = 200 ] || { WHY="$1 status $CODE"; return 1; }
    local r relays
    r=$(jqb '.nat.reachability')
    relays=$(jqb '.nat.relays | length')
    WHY="$1 is $r with $relays relays"
    [ "$r" = "$2" ] || return 1
    [ "$2" = public ] || [ "$relays" -gt 0 ]
}

peer_id() { req "$1" GET /api/v1/status; jqb '.peer_id'; }

has_ask() { # NODE PRICE
    req "$1" GET /api/v1/book/BTC-USD
    WHY="$1 book: $BODY"
    jq -e --arg p "$2" '[.asks[] | select((.[0] | tonumber) == ($p | tonumber))] | length > 0' <<<"$BODY" >/dev/null
}

# place NODE SIDE PRICE QTY [TIF]: ORDER and STATUS of the new order.
place() {
    local tif=${5:-gtc}
    must "$1" POST /api/v1/orders \
        "{\"market\":\"BTC-USD\",\"side\":\"$2\",\"price\":\"$3\",\"quantity\":\"$4\",\"time_in_force\":\"$tif\"}" 201
    ORDER=$(jqb '.id')
    STATUS=$(jqb '.status')
    log "$1 placed $2 $4 @ $3 ($tif): $ORDER ($STATUS)"
}

order_is() { # NODE ORDER STATUS
    req "$1" GET "/api/v1/orders/$2"
    WHY="$1 order $2: $(jqb '.status // empty') $BODY"
    [ "$(jqb '.status')" = "$3" ]
}

# connection_to NODE PEER: "direct", "relayed" or "none" in CONN.
connection_to() {
    req "$1" GET /api/v1/peers
    CONN=$(jq -r --arg p "$2" '[.[] | select(.peer_id == $p) | .connections[]] |
        if any(.relayed == false) then "direct" elif length > 0 then "relayed" else "none" end' <<<"$BODY")
}
is_direct() { connection_to "$1" "$2"; WHY="$1 to $2: $CONN"; [ "$CONN" = direct ]; }

no_order_taking() { # NODE...
    local n
    for n in "$@"; do
        req "$n" GET "/api/v1/orders?status=taking"
        [ "$CODE" = 200 ] || { WHY="$n orders: $CODE $BODY"; return 1; }
        [ "$(jqb 'length')" = 0 ] || { WHY="$n has orders taking: $BODY"; return 1; }
    done
}

one_digest() { # NODE...
    local n d first="" all=""
    for n in "$@"; do
        req "$n" GET /api/v1/book/BTC-USD
        d=$(jqb '.digest')
        all="$all $n=$d"
        [ -n "$first" ] || first=$d
        [ "$d" = "$first" ] || { WHY="digests differ:$all"; return 1; }
    done
    WHY="digests:$all"
}

trade_count() { # NODE: count in COUNT
    req "$1" GET "/api/v1/trades?market=BTC-USD&limit=1000"
    COUNT=$(jqb 'length')
}
trades_are() { # N NODE...
    local want=$1 n all=""
    shift
    for n in "$@"; do
        trade_count "$n"
        all="$all $n=$COUNT"
        [ "$COUNT" = "$want" ] || { WHY="trade counts:$all"; return 1; }
    done
}

# ms since the node started when its log first has a line matching REGEX.
ms_to_log() { # NODE REGEX
    local line ts
    line=$(grep -m1 -E "$2" "$TMP/$1.log" || true)
    [ -n "$line" ] || { echo "-"; return; }
    echo "$line"
}

# metric NODE NAME: the value of a metric without labels in /metrics (0 if
# absent), in VALUE.
metric() {
    req "$1" GET /metrics
    VALUE=$(awk -v n="$2" '$1 == n {print $2; found=1} END {if (!found) print 0}' <<<"$BODY")
}
metric_at_least() { # NODE NAME MIN
    metric "$1" "$2"
    WHY="$1 $2 = $VALUE"
    awk -v v="$VALUE" -v m="$3" 'BEGIN {exit !(v + 0 >= m + 0)}'
}
