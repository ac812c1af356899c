#!/usr/bin/env bash
# Runs Debian's docker-registry on 127.0.0.1, the embedded stand-in for a real container
# registry (the demo and the template's tests push `make image` results to it).
#
#   scripts/registry.sh start DIR [PORT]   start in the background (default port 5000); idempotent
#   scripts/registry.sh stop DIR           stop the registry started with this DIR
#
# DIR holds the blobs, the config, the log and the pid file. Plain HTTP on loopback only, so
# pushes use --tls-verify=false (deploy/image.py in a model repo does that for 127.0.0.1 and localhost).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
port=${3:-5000}
pidfile=$dir/registry.pid

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $action in
  start)
    if running; then
      echo "registry already running (pid $(cat "$pidfile"))" >&2
      exit 0
    fi
    command -v docker-registry >/dev/null || { echo "docker-registry is not installed (run make tools)" >&2; exit 1; }
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 50); do
      if curl -fs -o /dev/null "http://127.0.0.1:$port/v2/"; then
        echo "registry on 127.0.0.1:$port (pid $(cat "$pidfile"), storage $dir/data)" >&2
        exit 0
      fi
      running || break
      sleep 0.2
    done
    echo "registry did not start; its log:" >&2
    cat "$dir/registry.log" >&2
    exit 1
    ;;
  stop)
    if running; then
      kill "$(cat "$pidfile")"
    fi
    rm -f "$pidfile"
    ;;
  *) usage ;;
esac
