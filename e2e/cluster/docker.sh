#!/usr/bin/env bash
# Makes sure a Docker engine answers, and prints the docker client to use.
#
#   bash e2e/cluster/docker.sh        # prints e.g. /usr/bin/docker
#
# If `docker info` already works (a desktop or CI engine), nothing is changed.
# Otherwise, as root on Debian: installs docker.io (and jq, used by the runc
# wrapper) with apt, and starts dockerd in the background with runc-capsafe as
# its default runtime. That wrapper lets privileged containers (kind's nodes)
# start on hosts whose capability bounding set lacks CAP_SYS_RESOURCE; where
# the set is complete it changes nothing. dockerd's log and pid file live in
# the cache directory; stop it with: kill "$(cat <cache>/docker/dockerd.pid)".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/docker"
log() { echo "docker.sh: $*" >&2; }

# Prefer the engine's own client when a newer one sits first on PATH: kind and
# the build steps use plain commands that both understand, but the classic
# builder is only guaranteed with the matching client.
client() {
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || true; fi
}

docker_cli="$(client)"
if [ -n "$docker_cli" ] && "$docker_cli" info >/dev/null 2>&1; then
  echo "$docker_cli"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { log "no Docker engine answers and installing one needs root"; exit 1; }
  command -v apt-get >/dev/null 2>&1 || { log "no Docker engine answers; install Docker and start it"; exit 1; }
  log "installing docker.io with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker.io jq iptables >&2
fi

mkdir -p "$cache"
install -m 0755 "$here/runc-capsafe" "$cache/runc-capsafe"
pidfile="$cache/dockerd.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "dockerd (pid $(cat "$pidfile")) is starting"
else
  log "starting dockerd (log: $cache/dockerd.log)"
  # setsid: the engine outlives this script and is not killed with its process group.
  setsid dockerd \
    --add-runtime "capsafe=$cache/runc-capsafe" --default-runtime capsafe \
    --pidfile "$pidfile" >>"$cache/dockerd.log" 2>&1 </dev/null &
fi
docker_cli="$(client)"
for _ in $(seq 1 60); do
  if "$docker_cli" info >/dev/null 2>&1; then
    echo "$docker_cli"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; its log:"
tail -n 30 "$cache/dockerd.log" >&2
exit 1
