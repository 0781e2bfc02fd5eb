# Shell functions scripts/test.sh, scripts/galera.sh and scripts/pg-replica.sh share; sourced,
# not run (each script sets its own options).

find_tool() { # first of the names that is on PATH or in /usr/sbin
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    if [[ -x /usr/sbin/$name ]]; then
      echo "/usr/sbin/$name"
      return 0
    fi
  done
  return 1
}

free_ports() { # prints N distinct free TCP ports of 127.0.0.1, one a line
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
  else
    node -e '
      const net = require("net");
      const servers = [];
      const next = () => {
        if (servers.length == Number(process.argv[1])) {
          servers.forEach((s) => console.log(s.address().port));
          servers.forEach((s) => s.close());
          return;
        }
        const s = net.createServer();
        s.listen(0, "127.0.0.1", next);
        servers.push(s);
      };
      next();' "$1"
  fi
}

proc_stat() { # pid n: field n after the command name of /proc/<pid>/stat (0 state, 1 parent pid)
  local stat fields
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[$2]}"
}

alive() { # pid: the process runs (a zombie does not: it holds no port, only awaits its reaper)
  local state
  state=$(proc_stat "$1" 0) && [[ $state != Z ]]
}

exited() { ! alive "$1"; }

stopped() { [[ $(proc_stat "$1" 0) == T ]]; }
