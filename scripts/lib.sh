# Shell functions the scripts share; sourced, not run. `die` names the script that failed.

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

find_tool() { # first of the names on PATH or in /usr/sbin
  local name
  for name in "$@"; do
    command -v "$name" 2>/dev/null && return 0
    [[ -x /usr/sbin/$name ]] && { echo "/usr/sbin/$name"; return 0; }
  done
  return 1
}

free_ports() { # N distinct free TCP ports of 127.0.0.1, one a line
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_closed() { ! tcp_open "$1"; }

# A process runs: a zombie does not (it holds no port, it only awaits its reaper).
alive() { [[ $(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) =~ ^[^ZX]$ ]]; }
exited() { ! alive "$1"; }

wait_for() { # seconds command...: until the command succeeds, or fail when time runs out
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Starts a server in a session of its own (a Ctrl-C of the caller does not reach it, and a kill of
# the session ends every process it started), its output appended to LOG, its pid in PIDFILE.
launch() { # pidfile log command...
  local pidfile=$1 log=$2
  shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  disown $! # a kill is expected: no "Killed" job report
}

session_pids() { # session id: every live process of that session
  local p stat fields
  for p in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$p/stat" || continue
    read -r -a fields <<<"${stat##*) }" # state ppid pgrp session ...
    [[ ${fields[3]} == "$1" && ${fields[0]} != Z ]] && echo "${p#/proc/}"
  done
  return 0
}

# SIGKILL (a crash: no shutdown) or SIGTERM every process of the session a pidfile names, then
# wait until each is gone and PORT is closed.
end_session() { # KILL|TERM pidfile port
  local pid pids
  pid=$(<"$2") 2>/dev/null || return 0
  mapfile -t pids < <(session_pids "$pid")
  ((${#pids[@]})) || return 0
  kill -"$1" "${pids[@]}" 2>/dev/null || true
  if [[ $1 == TERM ]] && ! wait_for 10 exited "$pid"; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do wait_for 30 exited "$pid" || die "process $pid survived SIGKILL"; done
  wait_for 30 port_closed "$3" || die "port $3 is still open"
}

fail_with_log() { # what log...: the end of each log, then fail
  local log
  for log in "${@:2}"; do [[ -s $log ]] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }; done
  die "$1 did not start"
}

mariadb_at() { # mysql://[user[:password]@]host[:port]/ then client arguments
  local re='^mysql://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?'
  [[ $1 =~ $re ]] || die "not a mysql:// URL: $1"
  local user=${BASH_REMATCH[2]:-root} password=${BASH_REMATCH[4]} host=${BASH_REMATCH[5]} port=${BASH_REMATCH[7]:-3306}
  MYSQL_PWD=$(printf '%b' "${password//%/\\x}") "$(find_tool mariadb mysql)" --no-defaults -h "$host" \
    -P "$port" -u "$(printf '%b' "${user//%/\\x}")" "${@:2}"
}
