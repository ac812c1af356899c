"""Run a rendered pod the way a kubelet does with `restartPolicy: Never`, without a cluster: the
init containers one after the other, each to completion, then the containers; a failed init
container ends the pod and nothing after it runs.

Each container gets the pod's volumes at its mount paths (an emptyDir is a fresh directory owned
by the pod's fsGroup), exactly its env (values and envFrom Secrets), its working directory and the
pod's user, and runs exactly its command and args:
- the model image: its root filesystem (an overlay, so mount points can be made) read-only,
  with /tmp a tmpfs, as tests/helpers/images.py runs the service;
- an image the test stands in for with this machine's tools (the copier's rclone): this
  machine's root, bound into a mount namespace of its own with the volumes at their paths.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.project import require_mount_namespaces, require_tool

# $1 rootfs ("" for the host's), $2 uid:gid, $3 working directory, $4 "host:path ..." volumes;
# the rest is `env -i VAR=... command args`. The volumes are bound last, onto a root of its own,
# so that a mount (such as /tmp) never hides the host directory of another volume.
RUN_CONTAINER = r"""
set -eu
image=$1 user=$2 workdir=$3 volumes=$4; shift 4
scratch=$(mktemp -d)
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
root=$scratch/root
if [ -z "$image" ]; then
  mount --rbind / "$root"  # this machine's tools stand in for the image
else
  mount -t overlay overlay -o "lowerdir=$image,upperdir=$scratch/upper,workdir=$scratch/work" \
    "$root"
  touch "$root/etc/hosts"
  for pair in $volumes; do mkdir -p "$root${pair#*:}"; done  # the runtime makes mount points
  mount -o remount,ro "$root"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --bind -o ro /etc/hosts "$root/etc/hosts"
fi
for pair in $volumes; do mount --bind "${pair%%:*}" "$root${pair#*:}"; done
exec chroot --userspec="$user" "$root" /usr/bin/env -C "$workdir" "$@"
"""


@dataclass(frozen=True)
class Image:
    """An image's root filesystem and the settings of its configuration a container inherits."""

    rootfs: Path
    env: dict[str, str]
    workdir: str

    @classmethod
    def of(cls, rootfs: Path, config: dict[str, Any]) -> Image:
        env = dict(item.split("=", 1) for item in config.get("Env", []))
        return cls(rootfs, env, config.get("WorkingDir") or "/")


@dataclass(frozen=True)
class Exited:
    name: str
    returncode: int
    log: str


def emptydirs(pod: dict[str, Any], directory: Path) -> dict[str, Path]:
    """A fresh directory per emptyDir volume, owned by the pod's fsGroup as a kubelet does."""
    group = pod["securityContext"]["fsGroup"]
    made = {}
    for volume in pod["volumes"]:
        if "emptyDir" in volume:
            path = directory / volume["name"]
            path.mkdir(parents=True)
            os.chown(path, 0, group)
            path.chmod(0o2775)
            made[volume["name"]] = path
    return made


def run_pod(
    pod: dict[str, Any],
    volumes: dict[str, Path],
    images: dict[str, Image | None],
    secrets: dict[str, dict[str, str]],
    timeout: float = 600,
) -> list[Exited]:
    """Run `pod`'s containers in a kubelet's order; `volumes` maps each pod volume to a host
    directory, `images` each image to its Image (None: the host's tools stand in for it),
    `secrets` each Secret's data. Returns the containers that ran, in order."""
    require_mount_namespaces("running a pod's containers")
    security = pod["securityContext"]
    ran = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        image = images[container["image"]]
        env = dict(image.env) if image else {}  # the image's, under the container's own
        for source in container.get("envFrom", []):
            env.update(secrets[source["secretRef"]["name"]])
        env.update({item["name"]: item["value"] for item in container.get("env", [])})
        mounts = " ".join(
            f"{volumes[mount['name']]}:{mount['mountPath']}"
            for mount in container.get("volumeMounts", [])
        )
        context = container.get("securityContext", {})
        user = (
            f"{context.get('runAsUser', security['runAsUser'])}:"
            f"{context.get('runAsGroup', security['runAsGroup'])}"
        )
        workdir = container.get("workingDir") or (image.workdir if image else "/")
        command = [*container["command"], *container.get("args", [])]
        if image is None:  # the host's tools: the program by its path on this machine
            command[0] = require_tool(command[0])
        rootfs = str(image.rootfs) if image else ""
        argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork"]
        argv += ["sh", "-c", RUN_CONTAINER, "sh", rootfs, user, workdir, mounts]
        argv += ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        ran.append(Exited(container["name"], done.returncode, done.stdout + done.stderr))
        if done.returncode != 0:
            break  # restartPolicy Never: the pod has failed, nothing after it runs
    return ran
