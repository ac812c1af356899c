"""What the service image is, on top of its base: where things go, who runs it, how it starts.

What a Containerfile would say, applied without running anything: the build writes the files as
layers (deploy/image/__main__.py) and this configuration beside them.
"""

from __future__ import annotations

import copy

from .base import search_path

VENV = "/opt/venv"
BENTO = "/home/bentoml/bento"
# Fixed IDs: the Helm chart runs the pod as 1034:1034 (BentoML's own images use the same). The
# user owns nothing: the venv, the Bento and the model are root-owned and read-only to it.
USER = "bentoml"
UID = GID = 1034
PASSWD_ENTRY = f"{USER}:x:{UID}:{GID}::/home/{USER}:/usr/sbin/nologin\n"
GROUP_ENTRY = f"{USER}:x:{GID}:\n"
PORT = 3000
# BENTOML_HOME (scratch dirs, Prometheus multiprocess files) and HOME live on the writable /tmp;
# the chart may point BENTOML_HOME at its own emptyDir. The models are inside the Bento.
# Bytecode is precompiled (the root filesystem is read-only at run time).
ENV = {
    "VIRTUAL_ENV": VENV,
    "HOME": "/tmp",  # noqa: S108 - the container's own /tmp, its only writable directory
    "BENTOML_HOME": "/tmp/bentoml",  # noqa: S108
    "BENTOML_HOST": "0.0.0.0",  # noqa: S104 - a container serves on its pod's address
    "BENTOML_PORT": str(PORT),
    "BENTOML_CONTAINERIZED": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LANG": "C.UTF-8",
}
ENTRYPOINT = [f"{VENV}/bin/bentoml", "serve", BENTO]


def config(base: dict, labels: dict[str, str], created: str, layers: list[tuple[str, str]]) -> dict:
    """The image configuration: the base image's, with this image's settings on top and its
    layers (`(diff_id, what is in it)` pairs) after the base's."""
    image = copy.deepcopy(base)
    settings = image.setdefault("config", {})
    env = dict(item.split("=", 1) for item in settings.get("Env") or [])
    env["PATH"] = f"{VENV}/bin:{search_path(base)}"
    env.update(ENV)
    settings["Env"] = [f"{key}={value}" for key, value in env.items()]
    settings["User"] = f"{UID}:{GID}"
    settings["WorkingDir"] = BENTO
    settings["ExposedPorts"] = {**(settings.get("ExposedPorts") or {}), f"{PORT}/tcp": {}}
    settings["Entrypoint"] = ENTRYPOINT
    settings.pop("Cmd", None)  # the base's command (e.g. python3) is no argument of ours
    settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    image["created"] = created
    image["rootfs"]["diff_ids"] += [diff_id for diff_id, _ in layers]
    if image.get("history"):  # one entry per layer, or none at all
        image["history"] += [{"created": created, "created_by": what} for _, what in layers]
    return image
