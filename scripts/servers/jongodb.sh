#!/usr/bin/env bash
# The MongoDB-wire-compatible jongodb (npm @jongodb/memory-server-bin-linux-x64-gnu; MongoDB's own
# server cannot be installed here), in DIR on a free port of 127.0.0.1; installed into
# .cache/jongodb on first use. It keeps its data in memory: started again after a kill, it is
# empty.
#
#   jongodb.sh start|kill|stop DIR
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")/../.."

package=@jongodb/memory-server-bin-linux-x64-gnu version=0.1.6
bin=.cache/jongodb/node_modules/$package/bin/jongodb
(($# == 2)) || die "usage: $0 start|kill|stop DIR"
command=$1 dir=$2
[[ $command == stop && ! -f $dir/port ]] && exit 0
mkdir -p "$dir"
[[ -f $dir/port ]] || free_ports 1 >"$dir/port"
port=$(<"$dir/port")
case $command in
  start)
    if ! grep -qs "\"version\": \"$version\"" "${bin%/bin/jongodb}/package.json"; then
      [[ $(uname -sm) == "Linux x86_64" ]] || die "jongodb is installed for Linux x86_64 only: set OWNID_TEST_MONGODB_URL"
      npm install --prefix .cache/jongodb --no-audit --no-fund --loglevel=error "$package@$version" >/dev/null
    fi
    launch "$dir/server.pid" "$dir/server.log" "$bin" -Xmx256m --host=127.0.0.1 --port="$port"
    up() { tcp_open "$port" || { exited "$(<"$dir/server.pid")" && fail_with_log jongodb "$dir/server.log"; }; }
    wait_for 60 up || fail_with_log jongodb "$dir/server.log"
    echo "mongodb://127.0.0.1:$port"
    ;;
  kill) end_session KILL "$dir/server.pid" "$port" ;;
  stop) end_session TERM "$dir/server.pid" "$port" ;;
  *) die "unknown command $command" ;;
esac
