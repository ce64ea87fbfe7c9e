#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for the cluster tests (tests/cluster/) and by hand.
#
# Debian's rabbitmq-server, three extra nodes beside whatever broker the machine runs (never touched):
#   node N (1..3): name avw-cN@localhost, AMQP on 127.0.0.1:568N, distribution port 2568N,
#   data, logs and pid under $AVW_CLUSTER_DIR/nN (default /tmp/avatar-worker-cluster), no plugins,
#   an Erlang cookie of their own ($AVW_CLUSTER_DIR/.erlang.cookie), clustered with join_cluster.
#
#   scripts/cluster.sh start          start the nodes that are down and cluster them (idempotent)
#   scripts/cluster.sh stop           stop every node and delete the data
#   scripts/cluster.sh status         each node: running or down
#   scripts/cluster.sh urls           the AMQP URLs, comma-separated (for AVATAR_WORKER__AMQP__URLS)
#   scripts/cluster.sh kill N         kill -9 node N's Erlang VM (a crash)
#   scripts/cluster.sh stop-node N    stop node N cleanly (a rolling restart's step)
#   scripts/cluster.sh start-node N   start node N again; it rejoins the cluster
#   scripts/cluster.sh leader QUEUE   the node number leading quorum queue QUEUE
#   scripts/cluster.sh connections    one line per client connection: its node number and its name
#   scripts/cluster.sh queues         every queue: its name and its messages
#   scripts/cluster.sh wait-synced    wait until all three nodes run and see each other
set -euo pipefail

BASE="${AVW_CLUSTER_DIR:-/tmp/avatar-worker-cluster}"
RMQ_BIN="${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}"
NODES=(1 2 3)
STARTUP_TIMEOUT_S="${AVW_CLUSTER_STARTUP_TIMEOUT_S:-120}"

name() { echo "avw-c$1@localhost"; }
port() { echo "568$1"; }
dir() { echo "$BASE/n$1"; }

fail() {
  echo "cluster: $*" >&2
  exit 1
}

check_node() {
  [[ "${1:-}" =~ ^[123]$ ]] || fail "node must be 1, 2 or 3 (got '${1:-}')"
}

# The environment every rabbitmq command of node N runs with. HOME holds the cluster's own cookie, so
# these nodes and the machine's broker cannot talk to each other by accident.
node_env() {
  local n=$1 d
  d=$(dir "$n")
  echo HOME="$BASE" \
    RABBITMQ_NODENAME="$(name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(port "$n")" \
    RABBITMQ_DIST_PORT="2568$n" \
    RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$BASE/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/pid"
}

ctl() {
  local n=$1
  shift
  env $(node_env "$n") "$RMQ_BIN/rabbitmqctl" -n "$(name "$n")" "$@"
}

prepare() {
  [ -x "$RMQ_BIN/rabbitmq-server" ] || fail "$RMQ_BIN/rabbitmq-server not found (apt-get install -y rabbitmq-server)"
  mkdir -p "$BASE"
  chmod 700 "$BASE"
  if [ ! -s "$BASE/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$BASE/.erlang.cookie"
    chmod 400 "$BASE/.erlang.cookie"
  fi
  # Same epmd address as the machine's broker: one epmd serves every node.
  cat >"$BASE/rabbitmq-env.conf" <<'EOF'
ERL_EPMD_ADDRESS=127.0.0.1
EOF
  cat >"$BASE/rabbitmq.conf" <<'EOF'
loopback_users = none
cluster_partition_handling = pause_minority
EOF
  [ -f "$BASE/advanced.config" ] || echo "[]." >"$BASE/advanced.config"
  echo "[]." >"$BASE/enabled_plugins"
}

running() { ctl "$1" -q status >/dev/null 2>&1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$(port "$1")") 2>/dev/null; }

start_node() {
  local n=$1 d
  d=$(dir "$n")
  if listening "$n"; then
    running "$n" || fail "port $(port "$n") is taken by something that is not node $(name "$n")"
    return
  fi
  mkdir -p "$d/mnesia" "$d/log"
  env $(node_env "$n") ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$RMQ_BIN/rabbitmq-server" -detached >"$d/log/start.out" 2>&1 ||
    fail "node $n did not start: $(tail -5 "$d/log/start.out")"
}

# `rabbitmq-server -detached` returns before the node has registered with epmd, and await_startup fails at
# once for a node it cannot find: ask again until it answers or the deadline passes.
await_node() {
  local n=$1 deadline=$((SECONDS + STARTUP_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if ctl "$n" -q await_startup --timeout 10 >/dev/null 2>&1; then
      return
    fi
    sleep 0.5
  done
  echo "cluster: node $n did not start within ${STARTUP_TIMEOUT_S} s; its log:" >&2
  tail -n 30 "$(dir "$n")/log/$(name "$n").log" "$(dir "$n")/log/start.out" >&2 2>/dev/null || true
  exit 1
}

join() {
  local n=$1
  if ctl "$n" -q cluster_status 2>/dev/null | grep -q "$(name 1)"; then
    return
  fi
  ctl "$n" -q stop_app >/dev/null
  ctl "$n" -q join_cluster "$(name 1)" >/dev/null
  ctl "$n" -q start_app >/dev/null
}

# Asks one running node for the cluster's running nodes: all three, or wait.
wait_synced() {
  local deadline=$((SECONDS + STARTUP_TIMEOUT_S)) n
  while ((SECONDS < deadline)); do
    for n in "${NODES[@]}"; do
      listening "$n" || continue
      if ctl "$n" -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if len(s.get("running_nodes",[]))==3 else 1)'; then
        return
      fi
      break
    done
    sleep 0.5
  done
  fail "the three nodes did not see each other within ${STARTUP_TIMEOUT_S} s: $(status 2>&1 | tr '\n' ' ')"
}

# The three nodes listen and one of them sees all three running: nothing to do (one rabbitmqctl call, where
# starting and joining would make a dozen).
already_running() {
  local n
  for n in "${NODES[@]}"; do
    listening "$n" || return 1
  done
  ctl 1 -q cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if len(s.get("running_nodes",[]))==3 else 1)'
}

start() {
  if already_running; then
    echo "cluster: running ($(urls))"
    return
  fi
  prepare
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  for n in 2 3; do join "$n"; done
  wait_synced
  echo "cluster: running ($(urls))"
}

stop() {
  for n in "${NODES[@]}"; do
    if running "$n"; then
      ctl "$n" -q stop >/dev/null 2>&1 || true
    fi
    local pid_file
    pid_file="$(dir "$n")/pid"
    if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      kill -9 "$(cat "$pid_file")" 2>/dev/null || true
    fi
  done
  rm -rf "$BASE"
  echo "cluster: stopped"
}

status() {
  for n in "${NODES[@]}"; do
    if running "$n"; then
      echo "node $n $(name "$n") 127.0.0.1:$(port "$n") running"
    else
      echo "node $n $(name "$n") 127.0.0.1:$(port "$n") down"
    fi
  done
}

urls() {
  local out=() n
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(port "$n")/%2f"); done
  (
    IFS=,
    echo "${out[*]}"
  )
}

kill_node() {
  check_node "$1"
  local pid_file
  pid_file="$(dir "$1")/pid"
  [ -f "$pid_file" ] || fail "node $1 has no pid file ($pid_file): is it running?"
  kill -9 "$(cat "$pid_file")"
  # Gone when its AMQP port no longer answers.
  for _ in $(seq 1 100); do
    listening "$1" || return 0
    sleep 0.1
  done
  fail "node $1 still listens after kill -9"
}

leader() {
  local queue=$1 n line
  for n in "${NODES[@]}"; do
    running "$n" || continue
    line=$(ctl "$n" -q list_queues name leader --formatter json 2>/dev/null |
      python3 -c 'import json,sys; q=sys.argv[1]; print(next((r["leader"] for r in json.load(sys.stdin) if r["name"]==q), ""))' "$queue")
    case "$line" in
    avw-c[123]@*)
      echo "${line:5:1}"
      return
      ;;
    esac
  done
  fail "no running node knows a leader of queue $queue"
}

# Runs a rabbitmqctl command on the first node that listens (every node answers for the whole cluster).
ctl_any() {
  local n
  for n in "${NODES[@]}"; do
    if listening "$n"; then
      ctl "$n" -q "$@"
      return
    fi
  done
  fail "no node is running"
}

# The connection's node is the port in its name (`peer -> 127.0.0.1:568N`); its name is the one the
# client gave (client property connection_name).
connections() {
  ctl_any list_connections name client_properties --formatter json | python3 -c '
import json, re, sys
for row in json.load(sys.stdin):
    node = re.search(r"-> [^:]+:568([123])$", row["name"])
    given = re.search(r"connection_name\W+(?:longstr\W+)?([^\"\\]+)", json.dumps(row["client_properties"]))
    if node:
        print(node.group(1), given.group(1) if given else "")
'
}

queues() {
  ctl_any list_queues name messages --formatter json | python3 -c '
import json, sys
for row in json.load(sys.stdin):
    print(row["name"], row.get("messages", ""))
'
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
urls) urls ;;
kill)
  kill_node "${2:-}"
  ;;
stop-node)
  check_node "${2:-}"
  ctl "$2" -q stop >/dev/null
  ;;
start-node)
  check_node "${2:-}"
  prepare
  start_node "$2"
  await_node "$2"
  ;;
leader) leader "${2:?queue name}" ;;
connections) connections ;;
queues) queues ;;
wait-synced) wait_synced ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
