"""The registries, through skopeo (no daemon, no privileges): pull the base image into the OCI
layout, ask whether a tag already holds this build, push the result.

Credentials come from the environment and reach skopeo in an auth file (mode 0600, in the
build's temporary directory), never on a command line or in the output.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from . import require, tool

LOCAL_REGISTRIES = ("127.0.0.1", "localhost")
RETRIES = "--retry-times=3"  # registries on CI runners drop connections now and then


def tls_verify(reference: str) -> str:
    """skopeo's TLS setting (true|false) for a registry or image reference: off only for a
    registry on this machine, or when REGISTRY_TLS_VERIFY=false."""
    off = os.environ.get("REGISTRY_TLS_VERIFY", "").lower() in ("false", "0", "no")
    local = urlsplit(f"//{reference.split('/')[0]}").hostname in LOCAL_REGISTRIES
    return str(not (off or local)).lower()


def credentials(registry: str) -> tuple[str, str] | None:
    """REGISTRY_USER/REGISTRY_PASSWORD, else GitLab's job credentials, which are only ever offered
    to GitLab's own registry ($CI_REGISTRY), never to another one IMAGE_REPOSITORY names."""
    env = os.environ
    if env.get("REGISTRY_USER") and env.get("REGISTRY_PASSWORD"):
        return env["REGISTRY_USER"], env["REGISTRY_PASSWORD"]
    if env.get("CI_REGISTRY") == registry and env.get("CI_REGISTRY_USER"):
        return env["CI_REGISTRY_USER"], env.get("CI_REGISTRY_PASSWORD", "")
    return None


def authfile(registry: str, directory: Path) -> Path | None:
    """An auth file for `registry` when credentials are set (None: skopeo's own auth files, e.g.
    ~/.docker/config.json, apply)."""
    found = credentials(registry)
    if not found or not all(found):
        return None
    token = base64.b64encode(":".join(found).encode("utf-8")).decode("ascii")
    path = directory / "auth.json"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump({"auths": {registry: {"auth": token}}}, file)
    return path


def pushed(image: str, auth: Path | None) -> dict | None:
    """What the registry says about `image` (skopeo inspect), None when it does not have it."""
    command = [require("skopeo"), "inspect", RETRIES, f"--tls-verify={tls_verify(image)}"]
    found = subprocess.run(
        [*command, *(["--authfile", str(auth)] if auth else []), f"docker://{image}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(found.stdout) if found.returncode == 0 else None


def pull(image: str, layout: Path, name: str) -> None:
    """Copy `image` (the platform of this machine) into the OCI layout as `name`."""
    source = [f"--src-tls-verify={tls_verify(image)}", f"docker://{image}"]
    tool(["skopeo", "copy", "--quiet", RETRIES, *source, f"oci:{layout}:{name}"])


def push(layout: Path, name: str, image: str, auth: Path | None) -> str:
    """Push `name` of the OCI layout to `image`, byte for byte; returns its digest."""
    digestfile = layout.parent / "digest"
    command = ["skopeo", "copy", RETRIES, "--preserve-digests", "--digestfile", str(digestfile)]
    command += [f"--dest-tls-verify={tls_verify(image)}"]
    command += ["--dest-authfile", str(auth)] if auth else []
    tool([*command, f"oci:{layout}:{name}", f"docker://{image}"])
    return digestfile.read_text(encoding="utf-8").strip()
