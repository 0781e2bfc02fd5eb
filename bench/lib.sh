# Shell functions the benchmark scripts share (scripts/bench.sh, bench/callgrind-ab.sh,
# bench/scale.sh); sourced, not run.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# server_config PORT SECRET JWT_SECRET BACKEND URL MAX_CONNECTIONS [STORAGE_LINES]: a server
# configuration for a benchmark, on standard output. STORAGE_LINES are extra keys of `storage`,
# indented by two spaces. REPLAY_PROTECTION (environment, default off) is
# ownid.replay_protection.
server_config() {
  local port=$1 secret=$2 jwt_secret=$3 backend=$4 url=$5 max_connections=$6 extra=${7:-}
  local replay=${REPLAY_PROTECTION:-off}
  cat <<YAML
server:
  listen: "127.0.0.1:$port"
  # wrk and the raw client connect from one address (loopback), up to 256 connections at once;
  # the default share of one address is an eighth of max_connections.
  max_connections_per_address: 512
ownid:
  shared_secret: "$secret"
  # The requests are signed before the run and replayed during it: a long window, and replay
  # protection off unless asked for (bench/replay.sh), since wrk cycles through them.
  max_clock_skew: "1h"
  replay_protection: "$replay"
session:
  secret: "$jwt_secret"
storage:
  backend: $backend
  url: "$url"
YAML
  [[ -n $extra ]] && printf '%s\n' "$extra"
  cat <<YAML
  pool:
    max_connections: $max_connections
log:
  level: warn
YAML
}

# completed PORT: the requests the server on PORT has answered on the three endpoints (from its
# metrics).
completed() {
  curl -fs "http://127.0.0.1:$1/metrics" \
    | awk '/^ownid_bridge_requests_total\{(app="[^"]*",)?operation="(setOwnIDDataByLoginId|getOwnIDDataByLoginId|getSessionByLoginId)"/ { n += $NF } END { print n + 0 }'
}
