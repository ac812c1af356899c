#!/usr/bin/env bash
# Makes a Python base image from Debian packages and pushes it to a registry, for machines that
# cannot pull base images from any registry (the demo and the template's tests). Real CI sets
# BASE_IMAGE to docker.io/library/python:<version>-slim-bookworm and never runs this. It is a
# test stand-in: packages come from the bookworm release only (no bookworm-security updates).
#
#   scripts/base_image.sh REGISTRY [PYTHON_VERSION]      e.g. scripts/base_image.sh 127.0.0.1:5000
#
# The image is built once (debootstrap; buildah as root, no RUN step) and kept in a local
# containers storage under .cache/containers (vfs driver, shared by the tests and the demo). Each
# call pushes it to REGISTRY, a plain-HTTP registry on this machine (scripts/registry.sh), where
# `make image` pulls it like any base image. Prints KEY=VALUE lines (and nothing else) on stdout:
# BASE_IMAGE, and the containers storage settings with which the tests' buildah looks inside
# the images pushed there (`make image` needs none of them):
#   eval "$(scripts/base_image.sh 127.0.0.1:5000 | sed 's/^/export /')"
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 1 ]] || { echo "usage: $0 REGISTRY [PYTHON_VERSION]" >&2; exit 2; }
REGISTRY=$1
PYTHON_VERSION=${2:-3.11}
# Debian bookworm ships Python 3.11 only; other versions need BASE_IMAGE=python:X-slim-bookworm.
if [[ "$PYTHON_VERSION" != 3.11 ]]; then
  echo "Debian bookworm has Python 3.11 only; for $PYTHON_VERSION set BASE_IMAGE" \
    "(e.g. docker.io/library/python:$PYTHON_VERSION-slim-bookworm)" >&2
  exit 1
fi
IMAGE=localhost/debian-python:$PYTHON_VERSION
# The mirror apt uses on these machines (/etc/apt/sources.list.d/debian.sources).
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

ROOT=$PWD/.cache/containers
mkdir -p "$ROOT"
export CONTAINERS_STORAGE_CONF=$ROOT/storage.conf
export CONTAINERS_REGISTRIES_CONF=$ROOT/registries.conf

log() { printf '==> %s\n' "$*" >&2; }
for tool in debootstrap buildah skopeo; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (run make tools)" >&2; exit 1; }
done

cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$ROOT/storage"
runroot = "$ROOT/run"
EOF
# Fully qualified names only: a short name must never resolve to some public registry.
cat >"$CONTAINERS_REGISTRIES_CONF" <<'EOF'
unqualified-search-registries = []
short-name-mode = "enforcing"
EOF

# One builder at a time (pytest-xdist workers, a demo running next to the tests).
exec 9>"$ROOT/base-image.lock"
flock 9

if buildah inspect --type image "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists"
else
  start=$SECONDS
  work=$(mktemp -d "$ROOT/debootstrap.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "debootstrap bookworm (minbase + python3) from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # Nothing at run time needs package indexes, caches, docs or debootstrap's leftovers.
  rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/* \
    "$work/rootfs"/var/cache/debconf/*-old "$work/rootfs"/var/log/* \
    "$work/rootfs"/usr/share/{doc,man,info}/* "$work/rootfs"/debootstrap
  tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .

  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah config \
    --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 \
    --label org.opencontainers.image.title="debian-python" \
    --label org.opencontainers.image.description="Debian bookworm minbase with python3 $PYTHON_VERSION" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
  log "built $IMAGE in $((SECONDS - start)) s"
fi

PUSHED=$REGISTRY/debian-python:$PYTHON_VERSION
skopeo copy --quiet --dest-tls-verify=false "containers-storage:$IMAGE" "docker://$PUSHED" >&2
log "pushed $PUSHED"

printf '%s\n' \
  "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF" \
  "CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF" \
  "BASE_IMAGE=$PUSHED"
