#!/usr/bin/env bash
# The packages, tested as far as this machine allows (docs/install.md says what is not run):
#
#   1. The Debian package: cargo-deb packages BINARY (default target/debug/ownid-bridge, the
#      build the suite has just tested, its debug sections stripped; a release build would add
#      minutes), `dpkg -i` installs it
#      on this machine, the files, modes, user and conffiles are checked, `systemd-analyze
#      verify` checks the unit, and the server is run as the unit runs it (its user, working
#      directory, configuration and environment file; PID 1 here is no systemd to start it), its
#      own probe must pass and the three operations must answer as the contract says. Then the
#      package is purged again.
#   2. The container image: the Containerfile's runtime stage is built with Podman from BINARY
#      (the build stage replaced by a directory holding it, `--build-context build=...`) on a
#      local stand-in for the distroless base image (the base images cannot be pulled here), its
#      settings are read back (user, entry point, health check, volume, port), its filesystem is
#      exported, and the server is run from that filesystem as the image's user with the image's
#      configuration; the image's HEALTHCHECK command must pass and the contract must answer.
#   3. packaging/compose.yaml: its bridge environment is a configuration the server loads.
#
# Runs as root (dpkg, chroot, podman). Installs what is missing with apt-get (podman) and cargo
# (cargo-deb). Called by scripts/test.sh; alone: packaging/check.sh [BINARY].
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CARGO_DEB_VERSION=3.8.0
tested=$(realpath "${1:-target/debug/ownid-bridge}")


[[ $(id -u) == 0 ]] || die "run as root: it installs a Debian package and runs chroot and podman"
[[ -x $tested ]] || die "no binary at $tested (cargo build first)"
command -v dpkg >/dev/null || die "dpkg is missing: the Debian package needs a Debian-like system"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ownid-packages.XXXXXX")
chmod 755 "$tmp"
# The tested binary without its debug sections (a debug build's are hundreds of MB, which every
# copy below would carry; the code is the same).
binary=$tmp/ownid-bridge
objcopy --strip-debug "$tested" "$binary"
server_pid=''
installed_here=''
image=localhost/ownid-bridge-test:packages
base_image=localhost/ownid-bridge-test:runtime-base
container=''
cleanup() {
  local rc=$?
  set +e
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [[ -n $installed_here ]] && dpkg -s ownid-bridge >/dev/null 2>&1; then
    dpkg --purge ownid-bridge >"$tmp/purge.log" 2>&1 || cat "$tmp/purge.log" >&2
  fi
  if command -v podman >/dev/null; then
    [[ -n $container ]] && podman rm -f "$container" >/dev/null 2>&1
    podman rmi -f "$image" "$base_image" >/dev/null 2>&1
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# A server answering the contract at $1 (its root URL) with shared secret $2: a user added with
# `users add` ($3: the command that runs ownid-bridge as the package or image would) is stored,
# read back and given a session; an unknown one is 404.
check_contract() {
  local url=$1 secret=$2 status
  shift 2
  "$@" users add alice@example.com >/dev/null
  sign() { # operation body: the status line of the signed request's answer
    local answer
    answer=$(OWNID_BRIDGE__OWNID__SHARED_SECRET=$secret "$binary" sign "$1" "$2" --send \
      --url "$url/ownid") || true
    echo "${answer%%$'\n'*}"
  }
  status=$(sign getOwnIDDataByLoginId '{"loginId":"alice@example.com"}')
  [[ $status == "204 No Content" ]] || die "get before set: $status"
  status=$(sign setOwnIDDataByLoginId '{"loginId":"alice@example.com","ownIdData":"eyJkZXZpY2VzIjpbXX0="}')
  [[ $status == "204 No Content" ]] || die "set: $status"
  status=$(sign getOwnIDDataByLoginId '{"loginId":"alice@example.com"}')
  [[ $status == "200 OK" ]] || die "get: $status"
  status=$(sign getSessionByLoginId '{"loginId":"alice@example.com","sessionType":"browser"}')
  [[ $status == "200 OK" ]] || die "session: $status"
  status=$(sign getSessionByLoginId '{"loginId":"bob@example.com"}')
  [[ $status == "404 Not Found" ]] || die "session for an unknown user: $status"
  echo "   the contract: get 204, set 204, get 200, session 200, unknown 404"
}

wait_ready() { # command...: until it succeeds (the probe), for 30 s
  local i
  for ((i = 0; i < 150; i++)); do
    "$@" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

secret=$("$binary" config secret)
jwt_secret=$("$binary" config secret)

# ---------------------------------------------------------------------------------------------
# 1. The Debian package

if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  echo "== cargo install cargo-deb $CARGO_DEB_VERSION (once; a few minutes)"
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
echo "== the Debian package (cargo-deb), from $binary"
# cargo-deb takes its binary from the release directory of the target directory it is given:
# a scratch one holding BINARY.
mkdir -p "$tmp/deb-target/release"
cp "$binary" "$tmp/deb-target/release/ownid-bridge"
CARGO_TARGET_DIR=$tmp/deb-target cargo deb --no-build --fast --output "$tmp/ownid-bridge.deb" \
  >"$tmp/cargo-deb.log" 2>&1 || { cat "$tmp/cargo-deb.log" >&2; die "cargo deb failed"; }
if grep -i "warning" "$tmp/cargo-deb.log" >&2; then
  die "cargo deb warned (above)"
fi
dpkg-deb --info "$tmp/ownid-bridge.deb" >"$tmp/info.txt"
grep -q "^ Depends: .*adduser" "$tmp/info.txt" || die "the package does not depend on adduser"
for conffile in /etc/ownid-bridge/config.yaml /etc/ownid-bridge/environment; do
  dpkg-deb --ctrl-tarfile "$tmp/ownid-bridge.deb" | tar -xO ./conffiles | grep -qx "$conffile" \
    || die "$conffile is not a conffile"
done

if dpkg -s ownid-bridge >/dev/null 2>&1; then
  die "an ownid-bridge package is installed already: this test would replace it (dpkg --purge ownid-bridge)"
fi
installed_here=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$tmp/ownid-bridge.deb" >"$tmp/dpkg.log" 2>&1 \
  || { cat "$tmp/dpkg.log" >&2; die "dpkg -i failed"; }
getent passwd ownid-bridge >/dev/null || die "the package created no ownid-bridge user"
[[ $(getent passwd ownid-bridge | cut -d: -f7) == /usr/sbin/nologin ]] || die "the user has a login shell"
[[ $(stat -c '%U:%G %a' /etc/ownid-bridge/environment) == "root:ownid-bridge 640" ]] \
  || die "/etc/ownid-bridge/environment is $(stat -c '%U:%G %a' /etc/ownid-bridge/environment)"
[[ $(stat -c '%U:%G %a' /var/lib/ownid-bridge) == "ownid-bridge:ownid-bridge 750" ]] \
  || die "/var/lib/ownid-bridge is $(stat -c '%U:%G %a' /var/lib/ownid-bridge)"
unit=/lib/systemd/system/ownid-bridge.service
[[ -f $unit ]] || unit=/usr/lib/systemd/system/ownid-bridge.service
[[ -f $unit ]] || die "the unit is not installed"
/usr/bin/ownid-bridge --version >/dev/null
# The README's links to docs/ pages resolve in the installed documentation too.
doc=/usr/share/doc/ownid-bridge
for page in $(grep -o '](docs/[a-z-]*\.md' README.md | cut -c3- | sort -u); do
  [[ -f $doc/$page ]] || die "the README links $page, which the package does not install in $doc"
done
echo "   installed: /usr/bin/ownid-bridge, $unit, /etc/ownid-bridge/{config.yaml,environment}, user ownid-bridge"

if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log" >&2; die "systemd-analyze verify failed"; }
  if [[ -s $tmp/verify.log ]]; then
    cat "$tmp/verify.log" >&2
    die "systemd-analyze verify printed the above"
  fi
  echo "   systemd-analyze verify: no finding"
else
  echo "   systemd-analyze is not installed: the unit file was NOT verified"
fi
for setting in "User=ownid-bridge" "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" \
  "PrivateTmp=yes" "CapabilityBoundingSet=" "StateDirectory=ownid-bridge" \
  "EnvironmentFile=/etc/ownid-bridge/environment" "ExecStart=/usr/bin/ownid-bridge serve"; do
  grep -qx "$setting" "$unit" || die "the unit lacks $setting"
done

# The service as the unit starts it: its user, working directory, configuration, and the
# secrets from its environment file (here with a free port instead of 8080).
port=$(free_ports 1)
cat >/etc/ownid-bridge/environment <<EOF
OWNID_BRIDGE__OWNID__SHARED_SECRET=$secret
OWNID_BRIDGE__SESSION__SECRET=$jwt_secret
OWNID_BRIDGE__SERVER__LISTEN=127.0.0.1:$port
EOF
as_service() {
  (cd /var/lib/ownid-bridge && set -a && source /etc/ownid-bridge/environment && set +a \
    && OWNID_BRIDGE_CONFIG=/etc/ownid-bridge/config.yaml exec setpriv --reuid=ownid-bridge \
      --regid=ownid-bridge --init-groups /usr/bin/ownid-bridge "$@")
}
# The same, written out: a function run in the background would be a shell of its own around
# the server, and the pid would be that shell's (setpriv execs the server in place).
(cd /var/lib/ownid-bridge && set -a && source /etc/ownid-bridge/environment && set +a \
  && OWNID_BRIDGE_CONFIG=/etc/ownid-bridge/config.yaml exec setpriv --reuid=ownid-bridge \
    --regid=ownid-bridge --init-groups /usr/bin/ownid-bridge serve) >"$tmp/deb-server.log" 2>&1 &
server_pid=$!
wait_ready as_service probe || { cat "$tmp/deb-server.log" >&2; die "the packaged server did not become ready"; }
echo "   the server runs as ownid-bridge from the package's configuration; ownid-bridge probe: ready"
check_contract "http://127.0.0.1:$port" "$secret" as_service
[[ $(stat -c %U /var/lib/ownid-bridge/ownid-bridge.db) == ownid-bridge ]] \
  || die "the database is not in the state directory, owned by the service's user"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=''
as_service probe && die "the probe passed with the server stopped"
dpkg --purge ownid-bridge >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; die "dpkg --purge failed"; }
[[ ! -e /var/lib/ownid-bridge && ! -e /usr/bin/ownid-bridge && ! -e /etc/ownid-bridge ]] \
  || die "dpkg --purge left files behind"
echo "   purged: binary, configuration and state directory removed"

# ---------------------------------------------------------------------------------------------
# 2. The container image

if ! command -v podman >/dev/null; then
  echo "== apt-get install podman"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman >/dev/null
fi
echo "== the container image (Containerfile's runtime stage, podman build), from $binary"
# The stand-in for gcr.io/distroless/cc-debian12:nonroot: what it holds for this binary (this
# machine's glibc and libgcc, Debian 12's as there; the nonroot user 65532), nothing else.
base=$tmp/base
mkdir -p "$base/etc" "$base/tmp" "$base/home/nonroot"
chmod 1777 "$base/tmp"
ldd "$binary" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
chown 65532:65532 "$base/home/nonroot"
tar -C "$base" -c . | podman import - "$base_image" >"$tmp/podman-import.log" 2>&1 \
  || { cat "$tmp/podman-import.log" >&2; die "podman import failed"; }
# The build stage, replaced by a directory holding what it would produce.
mkdir -p "$tmp/build-stage/out/data"
cp "$binary" "$tmp/build-stage/out/ownid-bridge"
podman build --quiet --format docker --target runtime --build-context "build=$tmp/build-stage" \
  --build-arg "RUNTIME_IMAGE=$base_image" -t "$image" -f Containerfile . >"$tmp/podman-build.log" 2>&1 \
  || { cat "$tmp/podman-build.log" >&2; die "podman build failed"; }
inspect() { podman image inspect --format "$1" "$image"; }
[[ $(inspect '{{.Config.User}}') == 65532:65532 ]] || die "the image's user is $(inspect '{{.Config.User}}')"
[[ $(inspect '{{json .Config.Entrypoint}}') == '["/usr/local/bin/ownid-bridge"]' ]] || die "entry point $(inspect '{{json .Config.Entrypoint}}')"
[[ $(inspect '{{json .Config.Cmd}}') == '["serve"]' ]] || die "command $(inspect '{{json .Config.Cmd}}')"
healthcheck=$(podman image inspect --format '{{json .Healthcheck.Test}}' "$image" 2>/dev/null \
  || podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$image")
[[ $healthcheck == '["CMD","/usr/local/bin/ownid-bridge","probe"]' ]] || die "health check $healthcheck"
inspect '{{json .Config.Volumes}}' | grep -q '"/data"' || die "no /data volume"
inspect '{{json .Config.ExposedPorts}}' | grep -q '"8080/tcp"' || die "port 8080 is not exposed"
config_env=$(inspect '{{json .Config.Env}}')
grep -q 'OWNID_BRIDGE_CONFIG=/etc/ownid-bridge/config.yaml' <<<"$config_env" || die "environment $config_env"
echo "   image: user 65532:65532, entry point ownid-bridge serve, HEALTHCHECK ownid-bridge probe, volume /data, port 8080"

# Its filesystem, exported (creating a container runs nothing), and the server run from it as
# the image would run it: its user, working directory and configuration, the secrets as
# variables, here on a free port (the image listens on 0.0.0.0:8080).
container=$(podman create "$image")
rootfs=$tmp/rootfs
mkdir -p "$rootfs"
podman export "$container" | tar -C "$rootfs" -x
[[ $(stat -c '%u' "$rootfs/data") == 65532 ]] || die "/data does not belong to the image's user"
[[ $(find "$rootfs" -type f | wc -l) -lt 20 ]] || die "the runtime holds more than the binary and its libraries"
port=$(free_ports 1)
chroot=$(command -v chroot)
# (chroot always starts in the new root's /: the image's WORKDIR /data is not applied, and its
# configuration names the database by an absolute path, so it does not matter.)
in_image() {
  env -i OWNID_BRIDGE_CONFIG=/etc/ownid-bridge/config.yaml \
    OWNID_BRIDGE__OWNID__SHARED_SECRET="$secret" OWNID_BRIDGE__SESSION__SECRET="$jwt_secret" \
    OWNID_BRIDGE__SERVER__LISTEN="127.0.0.1:$port" \
    "$chroot" --userspec=65532:65532 "$rootfs" /usr/local/bin/ownid-bridge "$@"
}
env -i OWNID_BRIDGE_CONFIG=/etc/ownid-bridge/config.yaml \
  OWNID_BRIDGE__OWNID__SHARED_SECRET="$secret" OWNID_BRIDGE__SESSION__SECRET="$jwt_secret" \
  OWNID_BRIDGE__SERVER__LISTEN="127.0.0.1:$port" \
  "$chroot" --userspec=65532:65532 "$rootfs" /usr/local/bin/ownid-bridge serve >"$tmp/image-server.log" 2>&1 &
server_pid=$!
healthcheck_command() { in_image probe; }
wait_ready healthcheck_command || { cat "$tmp/image-server.log" >&2; die "the image's server did not become ready"; }
echo "   the server runs from the image's filesystem as 65532; its HEALTHCHECK (ownid-bridge probe): ready"
check_contract "http://127.0.0.1:$port" "$secret" in_image
[[ $(stat -c %u "$rootfs/data/ownid-bridge.db") == 65532 ]] || die "the database is not in the /data volume"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=''
healthcheck_command && die "the health check passed with the server stopped"
echo "   the SQLite default is in the /data volume; the health check fails once the server stops"

# ---------------------------------------------------------------------------------------------
# 3. The compose example: the bridge's environment is a configuration the server loads.

echo "== packaging/compose.yaml"
python3 - packaging/compose.yaml >"$tmp/compose.env" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
# The bridge service's environment block: `KEY: value` lines, ${VAR:?...} given a value.
block = text.split("\n  bridge:\n", 1)[1].split("\n    environment:\n", 1)[1]
for line in block.splitlines():
    if not line.startswith("      ") or line.strip().startswith("#"):
        if line.startswith("    ") and not line.startswith("      "):
            break
        continue
    key, value = line.strip().split(": ", 1)
    value = re.sub(r"\$\{([A-Z_]+)(:\?[^}]*)?\}", "compose-value", value.strip('"'))
    print(f"{key}={value}")
EOF
grep -q '^OWNID_BRIDGE__STORAGE__BACKEND=postgres$' "$tmp/compose.env" || die "the compose file's bridge is not on PostgreSQL"
env -i $(cat "$tmp/compose.env") OWNID_BRIDGE_CONFIG="$PWD/packaging/container/config.yaml" \
  "$binary" config show >"$tmp/compose-config.yaml" 2>&1 \
  || { cat "$tmp/compose-config.yaml" >&2; die "the compose file's bridge settings do not load"; }
grep -q 'url: postgres://ownid:\*\*\*@db:5432/ownid' "$tmp/compose-config.yaml" \
  || die "the compose file's database URL is not what the server uses"
echo "   the bridge's environment loads (config show): postgres://ownid:***@db:5432/ownid"
echo "== packages: passed"
