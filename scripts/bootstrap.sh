#!/usr/bin/env bash
# Installs what `make demo` and `make test` need, and nothing that is already there:
# uv, the template's dev venv (from uv.lock), Debian tools, and gitlab-ci-local from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one place the uv version is written (the generated projects use the same one).
UV_VERSION=$(python3 -c 'import json; print(json.load(open("cookiecutter.json"))["__uv_version"])')
GITLAB_CI_LOCAL_VERSION=4.73.0
# command (or file) -> Debian package. The real services of the end-to-end tests are Debian's
# too: PostgreSQL, and lighttpd (with its TLS module) in front of `git http-backend`; rclone
# stands in for the chart's batch copier image.
declare -A DEBIAN=(
  [git]=git [make]=make [rsync]=rsync [shellcheck]=shellcheck [buildah]=buildah
  [skopeo]=skopeo [docker-registry]=docker-registry [debootstrap]=debootstrap [wrk]=wrk
  [curl]=curl [jq]=jq [npm]=npm [chromium]=chromium [strace]=strace
  [openssl]=openssl [lighttpd]=lighttpd [rclone]=rclone
  [/usr/lib/lighttpd/mod_openssl.so]=lighttpd-mod-openssl
  [/usr/lib/git-core/git-http-backend]=git
)
# PostgreSQL's server programs are off PATH, under a versioned directory.
shopt -s nullglob
initdb=(/usr/lib/postgresql/*/bin/initdb)
shopt -u nullglob

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! command -v uv >/dev/null || [[ "$(uv --version)" != "uv $UV_VERSION"* ]]; then
  log "installing uv $UV_VERSION"
  python3 -m pip install --quiet --user "uv==$UV_VERSION" 2>/dev/null \
    || python3 -m pip install --quiet "uv==$UV_VERSION"
fi
export PATH="$HOME/.local/bin:$PATH"

missing=()
for cmd in "${!DEBIAN[@]}"; do
  if [[ $cmd == /* ]]; then [[ -e $cmd ]] || missing+=("${DEBIAN[$cmd]}")
  else command -v "$cmd" >/dev/null || missing+=("${DEBIAN[$cmd]}"); fi
done
((${#initdb[@]})) || missing+=(postgresql)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .cache/node/bin/gitlab-ci-local ]] \
  || [[ "$(.cache/node/bin/gitlab-ci-local --version 2>/dev/null)" != "$GITLAB_CI_LOCAL_VERSION" ]]; then
  log "installing gitlab-ci-local $GITLAB_CI_LOCAL_VERSION"
  npm install --silent --global --prefix .cache/node "gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" >/dev/null
fi

# Bytecode once here: where PYTHONDONTWRITEBYTECODE is set, every test process would otherwise
# recompile what it imports (MLflow alone: ~10 s).
uv sync --quiet --locked --compile-bytecode
