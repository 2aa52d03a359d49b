#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this one machine, from the Debian package, for the cluster
# tests and the cluster benchmark (issue 14). It never touches the machine's own node
# (rabbit@localhost, 5672, distribution port 25672): each node here has its own env file,
# config, data, log and pid under $DVCBUS_CLUSTER_DIR, its own ports, and runs as the
# rabbitmq user so that it shares that user's Erlang cookie with rabbitmqctl.
#
#   scripts/cluster.sh start            start dvc1..3 (idempotent), cluster them, print URLs
#   scripts/cluster.sh stop             stop every node and delete the base directory
#   scripts/cluster.sh status           each node: running or not, cluster members
#   scripts/cluster.sh kill NODE        kill -9 a node (1, 2, 3 or dvc2@localhost)
#   scripts/cluster.sh stopnode NODE    stop one node gracefully (connections get 320)
#   scripts/cluster.sh startnode NODE   start one node again (it rejoins by itself)
#   scripts/cluster.sh restart NODE     stopnode, then startnode
#   scripts/cluster.sh urls             the amqp_url and management_url lists
#
# Ports: AMQP $BASE_PORT+N (5701..5703), management 15700+N... (AMQP+10000), distribution
# AMQP+30000 (35701..), all on 127.0.0.1. Quorum queues get their leader on the least
# loaded node (queue_leader_locator = balanced) and a member on every node (the default
# initial group size, quorum_cluster_size, is 3 = the whole cluster).
set -euo pipefail

BASE="${DVCBUS_CLUSTER_DIR:-/tmp/dvcbus-cluster}"
PORT0="${DVCBUS_CLUSTER_PORT:-5700}"
NODES=(1 2 3)
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_HOME=/var/lib/rabbitmq
COOKIE="$RMQ_HOME/.erlang.cookie"

node_name() { echo "dvc$1@localhost"; }
amqp_port() { echo $((PORT0 + $1)); }
mgmt_port() { echo $((PORT0 + 10000 + $1)); }
dist_port() { echo $((PORT0 + 30000 + $1)); }

index_of() { # 2, dvc2 or dvc2@localhost -> 2
    local n="${1#dvc}"
    n="${n%@localhost}"
    case "$n" in 1 | 2 | 3) echo "$n" ;; *) echo "unknown node: $1" >&2 && exit 2 ;; esac
}

as_rabbitmq() { # run a command line as the rabbitmq user, in its home (its cookie)
    if [ "$(id -u)" = "$(id -u rabbitmq)" ]; then
        (cd "$RMQ_HOME" && HOME="$RMQ_HOME" sh -c "$1")
    else
        su rabbitmq -s /bin/sh -c "cd $RMQ_HOME && HOME=$RMQ_HOME $1"
    fi
}

node_env() { # the environment one node's server and CLI commands run with
    local dir="$BASE/dvc$1"
    echo "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf RABBITMQ_CONFIG_FILE=$dir/rabbitmq" \
        "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins RABBITMQ_DIST_PORT=$(dist_port "$1")" \
        "RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log" \
        "RABBITMQ_PID_FILE=$dir/pid RABBITMQ_PLUGINS_EXPAND_DIR=$dir/plugins-expand" \
        "RABBITMQ_NODENAME=$(node_name "$1")"
}

ctl() { # ctl N ARGS...: rabbitmqctl against node N
    local i="$1"
    shift
    as_rabbitmq "$(node_env "$i") $RMQ_BIN/rabbitmqctl -q -n $(node_name "$i") $*"
}

running() { ctl "$1" ping >/dev/null 2>&1; }

write_node_files() {
    local i="$1" dir="$BASE/dvc$1"
    mkdir -p "$dir/mnesia" "$dir/log" "$dir/plugins-expand"
    cat >"$dir/rabbitmq-env.conf" <<EOF
NODENAME=$(node_name "$i")
DIST_PORT=$(dist_port "$i")
MNESIA_BASE=$dir/mnesia
LOG_BASE=$dir/log
PID_FILE=$dir/pid
ENABLED_PLUGINS_FILE=$dir/enabled_plugins
PLUGINS_EXPAND_DIR=$dir/plugins-expand
CONFIG_FILE=$dir/rabbitmq
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$i")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(mgmt_port "$i")
queue_leader_locator = balanced
cluster_partition_handling = pause_minority
log.file.level = warning
EOF
    echo "[rabbitmq_management]." >"$dir/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$dir"
}

ensure_cookie() { # the one cookie every node and rabbitmqctl share, made before any start
    if [ ! -s "$COOKIE" ]; then
        head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20 >"$COOKIE"
        chown rabbitmq:rabbitmq "$COOKIE"
        chmod 400 "$COOKIE"
    fi
}

start_node() {
    local i="$1"
    if running "$i"; then return 0; fi
    write_node_files "$i"
    as_rabbitmq "$(node_env "$i") $RMQ_BIN/rabbitmq-server -detached" >/dev/null 2>&1
}

await_node() { # await_startup fails at once while the VM is not yet reachable: retry
    local deadline=$((SECONDS + 120))
    until ctl "$1" await_startup --timeout 60 >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "node $(node_name "$1") did not start; its log: $BASE/dvc$1/log" >&2
            return 1
        fi
        sleep 1
    done
}

clustered_with_first() { ctl "$1" cluster_status 2>/dev/null | grep -q "$(node_name 1)"; }

join_first() { # join node N to dvc1; a join refused (another node joining at that moment,
    # the first still starting) is tried again, up to 5 times
    local i="$1" attempt
    for attempt in 1 2 3 4 5; do
        clustered_with_first "$i" && return 0
        ctl "$i" stop_app >/dev/null 2>&1 || true
        ctl "$i" reset >/dev/null 2>&1 || true
        ctl "$i" join_cluster "$(node_name 1)" >/dev/null 2>&1 || true
        ctl "$i" start_app >/dev/null 2>&1 || true
        clustered_with_first "$i" && return 0
        echo "$(node_name "$i"): join attempt $attempt failed, again in 2 s" >&2
        sleep 2
    done
    echo "$(node_name "$i") could not join $(node_name 1)" >&2
    return 1
}

cmd_start() {
    mkdir -p "$BASE"
    chown rabbitmq:rabbitmq "$BASE"
    ensure_cookie
    local t0=$SECONDS
    for i in "${NODES[@]}"; do start_node "$i"; done
    for i in "${NODES[@]}"; do await_node "$i"; done
    echo "nodes up at $((SECONDS - t0))s" >&2
    join_first 2 # one at a time: two nodes joining at once can be refused
    join_first 3
    for i in "${NODES[@]}"; do await_node "$i"; done
    echo "cluster up in $((SECONDS - t0))s: $(node_name 1) $(node_name 2) $(node_name 3)"
    cmd_urls
}

cmd_urls() {
    local amqp="" mgmt=""
    for i in "${NODES[@]}"; do
        amqp+="${amqp:+,}amqp://guest:guest@127.0.0.1:$(amqp_port "$i")/%2F"
        mgmt+="${mgmt:+,}http://guest:guest@127.0.0.1:$(mgmt_port "$i")"
    done
    echo "DVCBUS_AMQP_URL=$amqp"
    echo "DVCBUS_MANAGEMENT_URL=$mgmt"
}

pid_of() { cat "$BASE/dvc$1/pid" 2>/dev/null || true; }

cmd_kill() {
    local i pid
    i="$(index_of "$1")"
    pid="$(pid_of "$i")"
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    # the pid file names the Erlang VM; epmd forgets the node when its socket closes
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "killed $(node_name "$i")"
}

cmd_stopnode() {
    local i
    i="$(index_of "$1")"
    running "$i" && ctl "$i" stop >/dev/null 2>&1 || true
    echo "stopped $(node_name "$i")"
}

cmd_startnode() {
    local i
    i="$(index_of "$1")"
    start_node "$i"
    await_node "$i"
    echo "started $(node_name "$i")"
}

cmd_stop() {
    for i in "${NODES[@]}"; do
        (if running "$i"; then ctl "$i" stop >/dev/null 2>&1 || true; fi) &
    done
    wait
    for i in "${NODES[@]}"; do # a node that would not stop: its VM, by its own pid only
        local pid
        pid="$(pid_of "$i")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    case "$BASE" in /tmp/* | /var/tmp/*) rm -rf "$BASE" ;; *) echo "left $BASE in place" ;; esac
    echo "cluster stopped"
}

cmd_status() {
    for i in "${NODES[@]}"; do
        if running "$i"; then
            echo "$(node_name "$i") running amqp=$(amqp_port "$i") management=$(mgmt_port "$i")"
        else
            echo "$(node_name "$i") down"
        fi
    done
    for i in "${NODES[@]}"; do
        if running "$i"; then
            ctl "$i" cluster_status --formatter json 2>/dev/null |
                python3 -c 'import json,sys; d=json.load(sys.stdin); print("running nodes:", " ".join(sorted(d["running_nodes"])))'
            return 0
        fi
    done
    return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
urls) cmd_urls ;;
kill) cmd_kill "${2:?kill NODE}" ;;
stopnode) cmd_stopnode "${2:?stopnode NODE}" ;;
startnode) cmd_startnode "${2:?startnode NODE}" ;;
restart) cmd_stopnode "${2:?restart NODE}" && cmd_startnode "$2" ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
