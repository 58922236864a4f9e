#!/usr/bin/env bash
# A replicated Apache Kafka on loopback for tests and benchmarks: N KRaft nodes
# (each broker + controller), replication factor N (at most 3) and
# min.insync.replicas N-1, so a node can die under load the way one does in
# production: partitions elect new leaders, producers must follow them.
#
# Usage:
#   scripts/kafka/cluster.sh start   --dir DIR [--nodes N]   format and start N nodes (default 3)
#   scripts/kafka/cluster.sh kill    DIR ID [SIGNAL]         signal node ID (default SIGKILL), wait until it is gone
#   scripts/kafka/cluster.sh restart DIR ID                  start node ID again: same ports, same data
#   scripts/kafka/cluster.sh stop    DIR                     stop every node (SIGTERM, then SIGKILL)
#
# stdout of start: KAFKA_BROKERS=127.0.0.1:<p1>,127.0.0.1:<p2>,...
# files: DIR/cluster.env (KAFKA_BROKERS, KAFKA_NODES), DIR/node<ID>/{server.properties,kafka.pid,kafka.log,data}
#
# Environment: as start.sh (KAFKA_VERSION, EDGEHAUL_KAFKA_CACHE, EDGEHAUL_KAFKA_START_TIMEOUT,
#   EDGEHAUL_KAFKA_HEAP_OPTS (default -Xms64m -Xmx384m per node), EDGEHAUL_KAFKA_JVM_OPTS,
#   EDGEHAUL_KAFKA_PARTITIONS (default 6)).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

TIMEOUT="${EDGEHAUL_KAFKA_START_TIMEOUT:-90}"
HEAP_OPTS="${EDGEHAUL_KAFKA_HEAP_OPTS:--Xms64m -Xmx384m}"
PARTITIONS="${EDGEHAUL_KAFKA_PARTITIONS:-6}"

lib_dir() {
  local d
  d="$(bash "$SCRIPT_DIR/fetch.sh" | tail -n1)"
  [[ -d "$d" ]] || die "fetch.sh did not produce a lib dir"
  echo "$d"
}

node_pid() { cat "$1/node$2/kafka.pid" 2>/dev/null || true; }

is_node() { # DIR ID: node ID is alive and really a Kafka broker
  local pid
  pid="$(node_pid "$1" "$2")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_logging() { # NODE_DIR
  cat >"$1/log4j2.properties" <<'EOF'
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

launch() { # DIR ID LIB: start the node in its own session, wait until it serves its port
  local dir="$1" id="$2" lib="$3" nd="$1/node$2" port pid
  port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\)$|\1|p' "$nd/server.properties")"
  read -r -a heap <<<"$HEAP_OPTS"
  read -r -a extra <<<"${EDGEHAUL_KAFKA_JVM_OPTS:-}"
  : >"$nd/kafka.log"
  setsid java "${heap[@]}" -XX:+UseSerialGC -XX:MaxMetaspaceSize=128m -XX:ReservedCodeCacheSize=48m -XX:CICompilerCount=2 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$nd/log4j2.properties" -Dkafka.logs.dir="$nd" \
    ${extra[@]+"${extra[@]}"} -cp "$lib/*" kafka.Kafka "$nd/server.properties" >>"$nd/kafka.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$nd/kafka.pid"
  echo "$port"
}

wait_ready() { # DIR ID PORT
  local nd="$1/node$2" deadline
  deadline=$(( $(date +%s) + TIMEOUT ))
  while (( $(date +%s) < deadline )); do
    is_node "$1" "$2" || { tail -n 40 "$nd/kafka.log" >&2; die "node $2 exited during startup (log: $nd/kafka.log)"; }
    if grep -q 'Kafka Server started' "$nd/kafka.log" && port_open "$3"; then return 0; fi
    sleep 0.2
  done
  tail -n 40 "$nd/kafka.log" >&2
  die "node $2 not ready after ${TIMEOUT}s (log: $nd/kafka.log)"
}

cmd_start() {
  local dir="" nodes=3
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  [[ -n "$dir" ]] || dir="$(mktemp -d -t edgehaul-kafka-cluster.XXXXXX)"
  [[ "$nodes" =~ ^[1-9]$ ]] || die "--nodes wants 1..9"
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  for id in $(seq 1 "$nodes"); do is_node "$dir" "$id" && die "node $id already runs in $dir; stop it first"; done
  command -v java >/dev/null 2>&1 || die "java not found (Kafka 4.x needs Java 17+)"
  local lib rf isr ports voters brokers cluster_id
  lib="$(lib_dir)"
  rf=$(( nodes < 3 ? nodes : 3 )); isr=$(( rf > 1 ? rf - 1 : 1 ))
  # 2 ports per node, distinct, below the ephemeral range: a node restarted
  # after a kill must find its ports free (see test/support/free-ports.cjs)
  read -r -a ports < <(node "$(dirname "${BASH_SOURCE[0]}")/../../test/support/free-ports.cjs" $(( nodes * 2 )))
  (( ${#ports[@]} == nodes * 2 )) || die "could not pick free ports"
  voters="" brokers=""
  for id in $(seq 1 "$nodes"); do
    voters="${voters:+$voters,}$id@127.0.0.1:${ports[$(( (id - 1) * 2 + 1 ))]}"
    brokers="${brokers:+$brokers,}127.0.0.1:${ports[$(( (id - 1) * 2 ))]}"
  done
  # an id starting with '-' would read as an option to kafka-storage: draw again (1 in 64)
  cluster_id=-
  while [[ "$cluster_id" == -* ]]; do cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; done
  for id in $(seq 1 "$nodes"); do
    local nd="$dir/node$id" p="${ports[$(( (id - 1) * 2 ))]}" c="${ports[$(( (id - 1) * 2 + 1 ))]}"
    rm -rf "$nd"; mkdir -p "$nd"
    write_logging "$nd"
    cat >"$nd/server.properties" <<EOF
# generated by scripts/kafka/cluster.sh: node $id of $nodes, KRaft broker+controller
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$nd/data

# replicated as in production: a write is acknowledged once $isr of $rf replicas have it
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
unclean.leader.election.enable=false

num.partitions=$PARTITIONS
EOF
    cat "$SCRIPT_DIR/broker-common.properties" >>"$nd/server.properties"
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$nd/log4j2.properties" \
      -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$nd/server.properties" >>"$nd/kafka.log" 2>&1 </dev/null \
      || { tail -n 40 "$nd/kafka.log" >&2; die "storage format of node $id failed"; }
  done
  local started=()
  for id in $(seq 1 "$nodes"); do started+=("$(launch "$dir" "$id" "$lib")"); done
  for id in $(seq 1 "$nodes"); do wait_ready "$dir" "$id" "${started[$(( id - 1 ))]}"; done
  printf 'KAFKA_BROKERS=%s\nKAFKA_NODES=%s\n' "$brokers" "$nodes" >"$dir/cluster.env"
  log "Kafka cluster of $nodes nodes ready: $brokers (replication $rf, min.insync.replicas $isr), dir $dir"
  echo "KAFKA_BROKERS=$brokers"
}

cmd_kill() {
  local dir="${1:?kill DIR ID [SIGNAL]}" id="${2:?kill DIR ID [SIGNAL]}" sig="${3:-KILL}" pid deadline
  is_node "$dir" "$id" || die "node $id does not run in $dir"
  pid="$(node_pid "$dir" "$id")"
  kill "-$sig" "$pid"
  deadline=$(( $(date +%s) + 60 ))
  while is_node "$dir" "$id"; do
    (( $(date +%s) < deadline )) || die "node $id (pid $pid) still runs 60 s after SIG$sig"
    sleep 0.1
  done
}

cmd_restart() {
  local dir="${1:?restart DIR ID}" id="${2:?restart DIR ID}" lib port
  [[ -f "$dir/node$id/server.properties" ]] || die "no node $id in $dir"
  is_node "$dir" "$id" && die "node $id still runs"
  lib="$(lib_dir)"
  port="$(launch "$dir" "$id" "$lib")"
  wait_ready "$dir" "$id" "$port"
}

cmd_stop() {
  local dir="${1:?stop DIR}" id pid
  for nd in "$dir"/node*; do
    [[ -d "$nd" ]] || continue
    id="${nd##*/node}"
    if is_node "$dir" "$id"; then
      pid="$(node_pid "$dir" "$id")"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  local deadline=$(( $(date +%s) + 30 ))
  for nd in "$dir"/node*; do
    [[ -d "$nd" ]] || continue
    id="${nd##*/node}"
    while is_node "$dir" "$id" && (( $(date +%s) < deadline )); do sleep 0.1; done
    if is_node "$dir" "$id"; then kill -KILL "$(node_pid "$dir" "$id")" 2>/dev/null || true; fi
    rm -f "$nd/kafka.pid"
  done
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  kill) shift; cmd_kill "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  -h|--help|"") usage ;;
  *) die "unknown command: $1 (start, kill, restart, stop)" ;;
esac
