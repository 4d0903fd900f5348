# The namespace topology of the NAT test (sourced by lib.sh).
#
#   simulated internet 198.18.0.0/24 (a bridge in namespace pbnat-inet)
#     P  198.18.0.2    public node (bootstrap, relay, AutoNAT server)
#     Q  198.18.0.3    public node started later
#     RA 198.18.0.10   NAT router of LAN A 10.1.0.0/24 (A = 10.1.0.2)
#     RB 198.18.0.20   NAT router of LAN B 10.2.0.0/24 (B = 10.2.0.2)
#
# The routers masquerade LAN traffic to their WAN address and forward
# nothing new inbound (no port forwards). Mode "eim" keeps the source port
# where it can, so a mapping is the same whatever the destination
# (endpoint-independent, what hole punching needs); mode "random" is
# MASQUERADE --random, a new random port per connection, which defeats
# punching. Nothing here reaches outside these namespaces.

# Per run, so two runs on one machine (two worktrees) never share a namespace.
NS_PREFIX=${NAT_TEST_PREFIX:-pbnat$$}
NODES=(p q a b)
declare -A NODE_IP=([p]=198.18.0.2 [q]=198.18.0.3 [a]=10.1.0.2 [b]=10.2.0.2)

ns() { echo "$NS_PREFIX-$1"; }
in_ns() { # NAME CMD...
    local n=$1
    shift
    ip netns exec "$(ns "$n")" "$@"
}

topo_down() {
    local n pids
    for n in inet p q ra rb a b; do
        # Nothing may outlive its namespace (a node left from a run cut short).
        pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill $pids 2>/dev/null || true
        ip netns del "$(ns "$n")" 2>/dev/null || true
    done
}

# veth pair between two namespaces: link NS1 IF1 NS2 IF2
link() {
    ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
}

topo_up() { # MODE: eim | random
    local mode=$1 n masq
    topo_down
    for n in inet p q ra rb a b; do
        ip netns add "$(ns "$n")"
        in_ns "$n" ip link set lo up
    done
    in_ns inet ip link add br0 type bridge
    in_ns inet ip link set br0 up
    for n in p q ra rb; do
        link "$n" wan inet "$n"
        in_ns inet ip link set "$n" master br0
        in_ns inet ip link set "$n" up
        in_ns "$n" ip link set wan up
    done
    in_ns p ip addr add 198.18.0.2/24 dev wan
    in_ns q ip addr add 198.18.0.3/24 dev wan
    in_ns ra ip addr add 198.18.0.10/24 dev wan
    in_ns rb ip addr add 198.18.0.20/24 dev wan

    link ra lan a eth0
    link rb lan b eth0
    in_ns ra ip addr add 10.1.0.1/24 dev lan
    in_ns rb ip addr add 10.2.0.1/24 dev lan
    in_ns a ip addr add 10.1.0.2/24 dev eth0
    in_ns b ip addr add 10.2.0.2/24 dev eth0
    for n in ra rb; do in_ns "$n" ip link set lan up; done
    for n in a b; do in_ns "$n" ip link set eth0 up; done
    in_ns a ip route add default via 10.1.0.1
    in_ns b ip route add default via 10.2.0.1

    masq=(-j MASQUERADE)
    [ "$mode" = random ] && masq=(-j MASQUERADE --random)
    for n in ra rb; do
        in_ns "$n" sysctl -qw net.ipv4.ip_forward=1
        in_ns "$n" iptables -t nat -A POSTROUTING -o wan "${masq[@]}"
        in_ns "$n" iptables -P FORWARD DROP
        in_ns "$n" iptables -A FORWARD -i lan -o wan -j ACCEPT
        in_ns "$n" iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        # Unsolicited UDP to the router is dropped (no ICMP answer), as home
        # routers do; an unsolicited TCP SYN is refused by the router's kernel.
        in_ns "$n" iptables -A INPUT -i wan -p udp -m conntrack --ctstate NEW -j DROP
    done
}
