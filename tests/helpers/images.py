"""Image build stand-ins and probes: the Debian base image, a local registry, image inspection,
and running an image's entrypoint the way Kubernetes would (non-root, read-only root, /tmp).

`podman run` does not work on these machines and `buildah run` cannot make the root read-only,
so `serve_read_only` does what a runtime does with the image's config: a new mount and PID
namespace, the rootfs bind-mounted read-only, a tmpfs on /tmp, then chroot as the image's user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.project import IN_CI, TEMPLATE, require_tool
from helpers.servers import free_port


def base_image_env() -> dict[str, str]:
    """BASE_IMAGE and the containers storage settings from scripts/base_image.sh (built once)."""
    for name in ("buildah", "debootstrap", "skopeo"):
        require_tool(name)
    out = subprocess.run(
        [str(TEMPLATE / "scripts" / "base_image.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@contextmanager
def local_registry(directory: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:<free port>; yields host:port."""
    require_tool("docker-registry")
    script = TEMPLATE / "scripts" / "registry.sh"
    port = free_port()
    subprocess.run([str(script), "start", str(directory), str(port)], check=True, timeout=60)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(script), "stop", str(directory)], check=False, timeout=60)


def skopeo_inspect(reference: str, *options: str) -> dict:
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *options, f"docker://{reference}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"skopeo inspect {reference}: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


@contextmanager
def mounted_rootfs(reference: str, env: dict[str, str]) -> Iterator[Path]:
    """The root filesystem of an image pulled from a local registry (a buildah container)."""

    def buildah(*args: str) -> str:
        return subprocess.run(
            ["buildah", *args], env=env, check=True, capture_output=True, text=True, timeout=600
        ).stdout.strip()

    container = buildah("from", "--quiet", "--tls-verify=false", f"docker://{reference}")
    image_id = buildah("inspect", "--format", "{{.FromImageID}}", container)
    try:
        yield Path(buildah("mount", container))
    finally:
        buildah("umount", container)
        buildah("rm", container)
        buildah("rmi", image_id)  # a full copy on the vfs driver: do not leave it behind


# Runs as root inside `unshare`: $1 is the rootfs, $2 the user, the rest `env -i` + command.
RUN_READ_ONLY = r"""
set -eu
root=$1 user=$2; shift 2
touch "$root/etc/hosts"  # a mount point for the host's, as runtimes provide one
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind -o ro /etc/hosts "$root/etc/hosts"
exec chroot --userspec="$user" "$root" "$@"
"""


@contextmanager
def serve_read_only(
    rootfs: Path, config: dict, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """Run the image's entrypoint with its env (plus `env`) on a read-only root, until exit."""
    if os.geteuid() != 0:
        message = "running an image needs root (mount and PID namespaces)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    require_tool("unshare")
    variables = dict(item.split("=", 1) for item in config.get("Env", []))
    variables.update(env)
    command = [*config.get("Entrypoint", []), *(config.get("Cmd") or [])]
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "sh",
        "-c",
        RUN_READ_ONLY,
        "sh",
        str(rootfs),
        config["User"],
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in variables.items()),
        *command,
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        # The entrypoint is PID 1 of its namespace: killing it takes every worker with it.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_ready(url: str, timeout: float, log: Path, process: subprocess.Popen) -> float:
    """Seconds until `url` answers 200; fails with the server's log otherwise."""
    start = time.monotonic()
    while time.monotonic() - start < timeout and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"{url} not ready after {time.monotonic() - start:.0f} s:\n{log.read_text()[-3000:]}"
    )
