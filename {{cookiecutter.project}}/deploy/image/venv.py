"""The runtime venv: built here, for the base image's Python, then moved into the image at
/opt/venv.

uv installs the project's [project] dependencies exactly as uv.lock pins them (not the pipeline's
tools: MLflow, DVC and the dev groups stay out), with nothing resolved, for the base image's
Python version and glibc (`--python-platform`), whatever this machine's are. The lock names
every wheel, so a warm uv cache builds offline (UV_OFFLINE=1: only from the cache).

Then the venv is made the image's: test suites are dropped (numpy, scipy, pandas and
scikit-learn ship about 110 MB of them), bytecode is compiled for /opt/venv (the root filesystem
is read-only at run time), and the scripts, activate files and bin/python name /opt/venv and the
base image's interpreter instead of this directory and this machine's Python.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import posixpath
import shutil
import subprocess
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

from . import require, tool
from .base import Python
from .recipe import VENV


def build(root: Path, venv: Path, python: Python, platform: str) -> None:
    venv = venv.resolve()
    sync(root, venv, python.version, platform)
    (venv / ".lock").unlink(missing_ok=True)  # uv's, world-writable
    for site in sorted(venv.glob("lib/python*/site-packages")):
        for directory, subdirectories, _ in os.walk(site):
            if "tests" in subdirectories:
                shutil.rmtree(Path(directory, "tests"))
                subdirectories.remove("tests")
    compile_bytecode(venv)
    relocate(venv, python)


def sync(root: Path, venv: Path, version: str, platform: str) -> None:
    # Bytecode is compiled afterwards, for /opt/venv (see compile_bytecode).
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_COMPILE_BYTECODE")}
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), UV_LINK_MODE="copy", UV_NO_PROGRESS="1")
    ca = os.environ.get("EXTRA_CA_CERTS")
    if ca:
        if not Path(ca).is_file():
            raise ProjectError(f"EXTRA_CA_CERTS={ca} is not a file")
        env["SSL_CERT_FILE"] = ca
    command = [require("uv"), "sync", "--quiet", "--project", str(root), "--frozen"]
    command += ["--no-default-groups", "--no-install-project"]
    command += ["--python", version, "--python-platform", platform]
    # The cache first, without asking any index; only then (unless UV_OFFLINE) the network.
    offline = subprocess.run([*command, "--offline"], env=env, stderr=subprocess.DEVNULL)
    if offline.returncode:
        tool(command, "uv sync", env=env)


def compile_bytecode(venv: Path) -> None:
    """Bytecode that names /opt/venv and is never checked against the sources (whose times the
    layer fixes). One process: parallel workers may marshal the same code differently."""
    command = [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-f"]
    command += ["-s", str(venv), "-p", VENV, "--invalidation-mode", "unchecked-hash"]
    tool([*command, str(venv / "lib")], "compiling the venv's bytecode")


def relocate(venv: Path, python: Python) -> None:
    here = os.fsencode(venv)
    rewritten: dict[str, bytes] = {}
    for path in sorted((venv / "bin").iterdir()):
        if path.is_symlink():
            if posixpath.isabs(os.readlink(path)):  # bin/python: this machine's interpreter
                path.unlink()
                path.symlink_to(python.path)
        elif here in (data := path.read_bytes()):
            rewritten[str(path)] = data.replace(here, VENV.encode())
            path.write_bytes(rewritten[str(path)])
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        update_record(record, rewritten)
    config = venv / "pyvenv.cfg"
    settings = {"home": posixpath.dirname(python.path), "version_info": python.version}
    lines = []
    for line in config.read_text(encoding="utf-8").replace(str(venv), VENV).splitlines():
        key = line.partition("=")[0].strip()
        lines.append(f"{key} = {settings[key]}" if key in settings else line)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def update_record(record: Path, rewritten: dict[str, bytes]) -> None:
    """Keep a wheel's RECORD true (hash, size) for its scripts rewritten: it named this
    directory's path, whose length varies, so the image would vary with it."""
    site = record.parent.parent
    rows = list(csv.reader(record.read_text(encoding="utf-8").splitlines()))
    changed = False
    for row in rows:
        data = rewritten.get(os.path.normpath(site / row[0])) if row else None
        if data is not None:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            row[1:3] = [f"sha256={digest.decode('ascii')}", str(len(data))]
            changed = True
    if changed:
        with record.open("w", encoding="utf-8", newline="") as file:
            csv.writer(file, lineterminator="\n").writerows(rows)
