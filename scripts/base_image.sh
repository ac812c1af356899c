#!/usr/bin/env bash
# Makes a Python base image from Debian packages, for machines that cannot pull base images
# from any registry (the demo and the template's tests). Real CI sets BASE_IMAGE to
# docker.io/library/python:<version>-slim-bookworm and never runs this. It is a test stand-in:
# packages come from the bookworm release only (no bookworm-security updates).
#
#   scripts/base_image.sh [PYTHON_VERSION]
#
# Idempotent: when the image is already in the local containers storage it only prints the
# environment. Prints KEY=VALUE lines (and nothing else) on stdout for the callers to use:
#   eval "$(scripts/base_image.sh | sed 's/^/export /')"
#
# buildah runs as root here without a daemon: the storage uses the vfs driver (no overlay
# mounts needed) under .cache/containers, shared by the tests and the demo so the image is built
# once, and RUN steps use chroot isolation (DESIGN.md section 6).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION=${1:-3.11}
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
export BUILDAH_ISOLATION=chroot

log() { printf '==> %s\n' "$*" >&2; }

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
  for tool in debootstrap buildah; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (run make tools)" >&2; exit 1; }
  done
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

printf '%s\n' \
  "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF" \
  "CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF" \
  "BUILDAH_ISOLATION=$BUILDAH_ISOLATION" \
  "BASE_IMAGE=$IMAGE"
