#!/usr/bin/env bash
# Redis servers for the KVStashRedis tests, on loopback ports picked free at random:
#   - a 3-node Redis Cluster (no replicas), addresses in KVSTASH_REDIS_CLUSTER (comma-separated);
#   - a single node with a password for the default user and an ACL user, address in
#     KVSTASH_REDIS_NODE, credentials in KVSTASH_REDIS_PASSWORD, KVSTASH_REDIS_ACL_USER and
#     KVSTASH_REDIS_ACL_PASSWORD.
# Each node runs daemonized from its own redis.conf in one temp directory (no persistence),
# writing its pid to redis.pid there; stopping kills the pids in those files (a test may kill
# and restart a node from its config file) and removes the directory.
#
# Sourced: `redis_test_servers_start` (installs Debian's redis-server if missing, starts the
# servers, exports the variables, stops them on EXIT). Run: `scripts/redis-test-servers.sh CMD...`
# runs CMD with the servers up and returns its status.

redis_test_log() { echo "[redis-test] $*" >&2; }

redis_test_install() {
  dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "install ok installed" && return 0
  redis_test_log "installing redis-server"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
}

# A port that is free, with its cluster bus port (port + 10000) free too.
redis_test_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 35000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && \
       ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null && \
       [[ " ${REDIS_TEST_PORTS[*]:-} " != *" $port "* ]]; then
      echo "$port"; return 0
    fi
  done
  redis_test_log "no free port found"; return 1
}

# Writes the config of one node (extra lines from stdin) and starts it.
redis_test_node() {
  local port="$1" dir="$REDIS_TEST_DIR/node-$1"
  mkdir -p "$dir"
  {
    printf '%s\n' "port $port" "bind 127.0.0.1" "daemonize yes" "pidfile $dir/redis.pid" \
      "logfile $dir/redis.log" "dir $dir" 'save ""' "appendonly no"
    cat
  } > "$dir/redis.conf"
  redis-server "$dir/redis.conf" || { redis_test_log "redis-server on port $port failed to start"; return 1; }
  REDIS_TEST_PORTS+=("$port")
}

redis_test_wait() {  # redis_test_wait DESCRIPTION CMD...: retry CMD for up to 10 s
  local what="$1"; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  redis_test_log "timed out waiting for $what"; return 1
}

redis_test_servers_start() {
  redis_test_install
  REDIS_TEST_PORTS=()
  REDIS_TEST_DIR="$(mktemp -d -t kvstash-redis.XXXXXX)"
  trap redis_test_servers_stop EXIT
  local cluster=() port
  for _ in 1 2 3; do
    port="$(redis_test_free_port)" || return 1
    printf '%s\n' "cluster-enabled yes" "cluster-config-file nodes.conf" "cluster-node-timeout 3000" \
      "cluster-require-full-coverage no" | redis_test_node "$port" || return 1
    cluster+=("127.0.0.1:$port")
  done
  local password acl_password
  password="$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
  acl_password="$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
  port="$(redis_test_free_port)" || return 1
  printf '%s\n' "requirepass $password" "user kvstash-test on >$acl_password ~kvstash:* &* +@all" \
    | redis_test_node "$port" || return 1
  local single="127.0.0.1:$port"

  for p in "${REDIS_TEST_PORTS[@]}"; do
    redis_test_wait "port $p" bash -c "[ \"\$(REDISCLI_AUTH='$password' redis-cli -p $p --no-auth-warning ping)\" = PONG ]" || return 1
  done
  redis-cli --cluster create "${cluster[@]}" --cluster-replicas 0 --cluster-yes >/dev/null || {
    redis_test_log "redis-cli --cluster create failed"; return 1; }
  for node in "${cluster[@]}"; do
    redis_test_wait "cluster state ok on $node" \
      bash -c "redis-cli -p ${node##*:} cluster info | grep -q '^cluster_state:ok'" || return 1
  done
  KVSTASH_REDIS_CLUSTER="$(IFS=,; echo "${cluster[*]}")"
  export KVSTASH_REDIS_CLUSTER KVSTASH_REDIS_NODE="$single" KVSTASH_REDIS_PASSWORD="$password"
  export KVSTASH_REDIS_ACL_USER=kvstash-test KVSTASH_REDIS_ACL_PASSWORD="$acl_password"
  redis_test_log "cluster $KVSTASH_REDIS_CLUSTER, single node $KVSTASH_REDIS_NODE"
}

redis_test_servers_stop() {
  [ -n "${REDIS_TEST_DIR:-}" ] && [ -d "$REDIS_TEST_DIR" ] || return 0
  local pids=() pidfile pid
  for pidfile in "$REDIS_TEST_DIR"/node-*/redis.pid; do
    [ -f "$pidfile" ] && pid="$(cat "$pidfile")" && kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # A node still answering on its port was started by a test after its pid file was read.
  for port in "${REDIS_TEST_PORTS[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$REDIS_TEST_DIR"
  REDIS_TEST_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -ge 1 ] || { echo "usage: $0 CMD..." >&2; exit 2; }
  redis_test_servers_start
  status=0
  "$@" || status=$?
  exit "$status"
fi
