"""`make image` (`python -m deploy.image`): the service image, assembled from files.

Nothing runs inside the image while it is built, so the build needs no container runtime, no
daemon, no privileges and no user namespace (a stock unprivileged CI runner will do): skopeo
fetches the base image into an OCI layout, uv builds the runtime venv here for the base image's
Python, two layers are written from Python, and skopeo pushes the result. See docs/image.md.

    recipe.py    what the image is: paths, user, environment, entrypoint
    base.py      what the build reads from the base image's files (Python, glibc, users)
    venv.py      the runtime venv, built here and relocated to /opt/venv
    layers.py    layer tarballs: root-owned, sorted, fixed times (same files, same digest)
    oci.py       the OCI layout the image is assembled in
    registry.py  skopeo: pull, inspect, push; registry credentials
"""

from __future__ import annotations

import shutil
import subprocess

from {{ cookiecutter.__package }}.errors import ProjectError


def require(command: str) -> str:
    """The path of a command the build needs."""
    found = shutil.which(command)
    if found is None:
        raise ProjectError(f"{command} is not installed (see docs/image.md)")
    return found


def tool(command: list[str], name: str = "", **kwargs) -> subprocess.CompletedProcess[str]:
    """Run skopeo, uv or python; a failure names the tool (its own output went to the terminal
    already). No secret is ever in argv, so the command may be named in full."""
    require(command[0])
    result = subprocess.run(command, text=True, check=False, **kwargs)
    if result.returncode != 0:
        name = name or " ".join(command[:2])
        raise ProjectError(f"{name} failed with exit code {result.returncode}")
    return result
