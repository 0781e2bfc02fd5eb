#!/usr/bin/env bash
# HAProxy in DIR on a free port of 127.0.0.1, in front of server instances on SERVER_PORTs
# (round robin, health check GET /readyz, retries with redispatch), its log in DIR/haproxy.log
# and its runtime API on DIR/haproxy.sock (tests/clusters/killed.rs reads both):
#
#   haproxy.sh start DIR SERVER_PORT...   prints the port it listens on
#   haproxy.sh stop DIR
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

(($# >= 2)) || die "usage: $0 start DIR SERVER_PORT... | stop DIR"
command=$1 dir=$2
shift 2
[[ $command == stop && ! -f $dir/port ]] && exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
case $command in
  start)
    haproxy=$(find_tool haproxy) || die "haproxy is not installed (apt-get install haproxy)"
    port=$(free_ports 1)
    cat >"$dir/haproxy.cfg" <<EOF
global
    log stdout format raw local0
    stats socket $dir/haproxy.sock mode 600 level admin

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 15s
    timeout check 6s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request

frontend ownid
    bind 127.0.0.1:$port
    default_backend bridges

backend bridges
    balance roundrobin
    option httpchk GET /readyz
EOF
    n=0
    for server in "$@"; do
      echo "    server instance$((++n)) 127.0.0.1:$server check inter 500ms fall 2 rise 2" >>"$dir/haproxy.cfg"
    done
    "$haproxy" -c -q -f "$dir/haproxy.cfg" || die "invalid configuration $dir/haproxy.cfg"
    echo "$port" >"$dir/port"
    launch "$dir/server.pid" "$dir/haproxy.log" "$haproxy" -f "$dir/haproxy.cfg" -db
    wait_for 30 test -S "$dir/haproxy.sock" || fail_with_log HAProxy "$dir/haproxy.log"
    echo "$port"
    ;;
  stop) end_session TERM "$dir/server.pid" "$(<"$dir/port")" ;;
  *) die "unknown command $command" ;;
esac
