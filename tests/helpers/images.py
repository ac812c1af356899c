"""Image build stand-ins and probes: the Debian base image, a local registry, an unprivileged
build job, image inspection, and running an image's entrypoint the way Kubernetes would
(non-root, read-only root, /tmp).

The build itself needs no privileges; the probes do. `podman run` does not work on these
machines and `buildah run` cannot make the root read-only, so `serve_read_only` does what a
runtime does with the image's config: a new mount and PID namespace, the rootfs bind-mounted
read-only, a tmpfs on /tmp, then chroot as the image's user. buildah (as root) only pulls and
mounts images to look inside them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.project import (
    GIT_IDENTITY,
    IN_CI,
    QUIET_TOOLS,
    TEMPLATE,
    copy_project,
    require_mount_namespaces,
    require_tool,
    run,
)
from helpers.servers import free_port

# The unprivileged build job: this user, and on its PATH only these tools (plus uv and Python):
# no buildah, podman, unshare, mount, newuidmap or sudo.
BUILDER = "nobody"
BUILD_TOOLS = ("make", "git", "skopeo")
# Where a Python for the builder is looked for (a pyenv under /root is not the builder's).
SYSTEM_PATH = "/usr/local/bin:/usr/bin"
# What the build must never do, by system call or by program (strace's names).
NAMESPACE_CALLS = ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot")
CONTAINER_TOOLS = ("buildah", "podman", "unshare", "newuidmap", "newgidmap", "mount", "sudo", "su")
CONTAINER_TOOLS += ("runc", "crun", "docker", "nsenter", "chroot")
# uv's lock and marker files, which it opens for writing even when it only reads the cache.
UV_CONTROL_FILES = (".lock", ".gitignore", ".git", "CACHEDIR.TAG")


def base_image_env(registry: str) -> dict[str, str]:
    """BASE_IMAGE, the Debian base image pushed to `registry` (built once), and the containers
    storage settings buildah inspects images with: scripts/base_image.sh's output."""
    for name in ("buildah", "debootstrap", "skopeo"):
        require_tool(name)
    out = subprocess.run(
        [str(TEMPLATE / "scripts" / "base_image.sh"), registry],
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


@dataclass(frozen=True)
class Builder:
    """A CI build job on an unprivileged runner (see builder_workspace)."""

    workspace: Path
    project: Path
    uid: int
    gid: int
    env: dict[str, str]

    def make(self, target: str, trace: Path | None = None, **env: str) -> None:
        """`make <target>` as the builder; with `trace`, every process is traced (strace) for
        program runs, clones, namespace and mount calls, into that file."""
        if trace:
            calls = ",".join(("execve", "clone", "clone3", *NAMESPACE_CALLS))
            prefix = [require_tool("strace"), "-f", "--seccomp-bpf", "-qq", "-e", f"trace={calls}"]
            prefix += ["-e", "signal=none", "-o", str(trace), "-u", BUILDER]
        else:
            prefix = [require_tool("setpriv"), f"--reuid={self.uid}", f"--regid={self.gid}"]
            prefix += ["--clear-groups"]
        run([*prefix, "make", target], self.project, {**self.env, **env}, timeout=1800)

    def git(self, *args: str) -> str:
        command = [require_tool("setpriv"), f"--reuid={self.uid}", f"--regid={self.gid}"]
        return run([*command, "--clear-groups", "git", *args], self.project, self.env).stdout


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    for directory, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def link_tree(source: Path, target: Path) -> None:
    """`source` copied into `target` as hard links, safe while other tests' uv write to it:
    its temporary entries are left out, and a file gone before it is linked is skipped."""
    for directory, dirs, files in os.walk(source):
        here = target / Path(directory).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        links = [d for d in dirs if os.path.islink(os.path.join(directory, d))]
        dirs[:] = [d for d in dirs if d not in links and not d.startswith(".tmp")]
        for name in [*files, *links]:
            if name.startswith(".tmp"):
                continue
            try:
                os.link(os.path.join(directory, name), here / name, follow_symlinks=False)
            except FileNotFoundError:
                pass


def own_uv_cache(source: Path, target: Path, uid: int, gid: int) -> None:
    """A uv cache the builder may use: `source` hard-linked (its files stay root's and read-only
    to the builder, so nothing done through them can change the shared cache), with directories
    of its own and fresh copies of the files uv opens for writing."""
    link_tree(source, target)
    for directory, _, files in os.walk(target):
        os.chown(directory, uid, gid)
        for name in files:
            if name in UV_CONTROL_FILES:
                path = Path(directory, name)
                data = path.read_bytes()
                path.unlink()
                path.write_bytes(data)
                os.chown(path, uid, gid)


@contextmanager
def builder_workspace(trained: Path, env: dict[str, str]) -> Iterator[Builder]:
    """An unprivileged runner's build job for a copy of `trained` with its Bento: the user
    `nobody`, a workspace it owns (checkout, venv, uv cache, home), a clean environment holding
    only what a project sets (BASE_IMAGE, UV_OFFLINE...), and a PATH with nothing but make, git,
    skopeo, uv and a Python of the project's version."""
    for name in ("setpriv", "strace", *BUILD_TOOLS):
        require_tool(name)
    version = (trained / ".python-version").read_text().strip()
    python = shutil.which(f"python{version}", path=SYSTEM_PATH)
    if not python:
        message = f"no python{version} in {SYSTEM_PATH} for the unprivileged build"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    user = pwd.getpwnam(BUILDER)
    uid, gid = user.pw_uid, user.pw_gid
    workspace = Path(tempfile.mkdtemp(prefix="image-build-"))  # pytest's are root's only (0700)
    try:
        workspace.chmod(0o755)
        project = copy_project(trained, workspace)
        # As root: MLflow recorded the model's artifacts under the trained project, root's.
        run(["make", "bento"], project, {**env, "BENTOML_HOME": str(workspace / "bentoml")})
        for name in ("home", "venv"):
            (workspace / name).mkdir()
        for name in ("home", "venv", "bentoml", project.name):
            chown_tree(workspace / name, uid, gid)
        own_uv_cache(Path(env["UV_CACHE_DIR"]), workspace / "uv-cache", uid, gid)
        tools = workspace / "bin"
        tools.mkdir()
        for name in BUILD_TOOLS:
            (tools / name).symlink_to(shutil.which(name))
        for name in ("python3", f"python{version}"):
            (tools / name).symlink_to(python)
        shutil.copy2(shutil.which("uv", path=env["PATH"]), tools / "uv")  # maybe under /root
        builder_env = {
            **QUIET_TOOLS,
            **GIT_IDENTITY,
            "PATH": str(tools),
            "HOME": str(workspace / "home"),
            "LANG": "C.UTF-8",
            "BENTOML_HOME": str(workspace / "bentoml"),
            "UV_CACHE_DIR": str(workspace / "uv-cache"),
            "UV_PROJECT_ENVIRONMENT": str(workspace / "venv"),
            "UV_LINK_MODE": "copy",
            "UV_OFFLINE": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "BASE_IMAGE": env["BASE_IMAGE"],
        }
        yield Builder(workspace, project, uid, gid, builder_env)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def forbidden_calls(trace: Path) -> list[str]:
    """The lines of an strace log where a process asked for a namespace or a mount, or tried to
    run a container tool."""
    found = []
    for line in trace.read_text().splitlines():
        call = line.split(maxsplit=1)[-1]
        name = call.split("(", 1)[0]
        program = call.split('"')[1].rsplit("/", 1)[-1] if name == "execve" else ""
        if name in NAMESPACE_CALLS or "CLONE_NEW" in call or program in CONTAINER_TOOLS:
            found.append(line)
    return found


def programs(trace: Path) -> set[str]:
    """The programs the traced processes ran (or tried to: PATH lookups included)."""
    lines = trace.read_text().splitlines()
    calls = [line.split(maxsplit=1)[-1] for line in lines]
    return {call.split('"')[1].rsplit("/", 1)[-1] for call in calls if call.startswith("execve(")}


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
    require_mount_namespaces("running an image")
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
