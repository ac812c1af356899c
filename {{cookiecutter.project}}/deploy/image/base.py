"""What the build reads from the base image's files, without running anything: its Python (the
venv is built for it), its C library (which wheels run on it), its users (the service user is
added to them) and its directories.

The layers are read in order with their whiteouts applied, as a runtime would unpack them (OCI
image spec, "Applying Changesets"). Only file kinds and link targets are kept, plus the contents
of /etc/passwd, /etc/group and the C library.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

# A runtime's PATH when the image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_FILES = ("etc/passwd", "etc/group")
LIBC = re.compile(r"libc(\.so\.6|-2\.\d+\.so)")
GLIBC_VERSION = re.compile(rb"GLIBC_2\.(\d+)")
PYTHON = re.compile(r"python(3\.\d+)")
OPAQUE = ".wh..wh..opq"
WHITEOUT = ".wh."
# The wheel platforms `uv sync --python-platform` takes: <machine>-manylinux_2_<glibc minor>,
# for these machines and glibc 2.17 to 2.40 (wheels for an older glibc run on a newer one).
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
GLIBC_MINORS = range(17, 41)


def search_path(config: dict) -> str:
    """The PATH of an image configuration."""
    for item in (config.get("config") or {}).get("Env") or []:
        if item.startswith("PATH="):
            return item.removeprefix("PATH=")
    return DEFAULT_PATH


@dataclass(frozen=True)
class Python:
    path: str  # the interpreter, e.g. /usr/local/bin/python3.11
    version: str  # its minor version, e.g. 3.11


class BaseFiles:
    """The base image's file tree: kind ("dir", "file", "link", "other") and link target by path
    (relative to /, as in a layer)."""

    def __init__(self, name: str, layers: list[Path]) -> None:
        self.name = name
        self.kinds: dict[str, tuple[str, str]] = {}
        self.contents: dict[str, bytes] = {}
        for layer in layers:
            try:
                with tarfile.open(layer, "r|*") as tar:
                    self._apply(tar)
            except tarfile.TarError as error:
                raise ProjectError(f"base image {name}: layer {layer.name}: {error}") from None

    def _apply(self, tar: tarfile.TarFile) -> None:
        added: set[str] = set()  # whiteouts apply to the layers below, never to this one
        for member in tar:
            path = posixpath.normpath(member.name.lstrip("/"))
            if path == ".":
                continue
            directory, _, name = path.rpartition("/")
            if name == OPAQUE:
                self._remove(directory, keep=added, itself=False)
                continue
            if name.startswith(WHITEOUT):
                self._remove(posixpath.join(directory, name.removeprefix(WHITEOUT)), keep=added)
                continue
            if not member.isdir() and self.kind(path) == "dir":
                self._remove(path, keep=added, itself=False)  # a file replaces a directory
            self.contents.pop(path, None)
            kind = (
                "dir"
                if member.isdir()
                else "link"
                if member.issym()
                else "file"
                if member.isfile() or member.islnk()
                else "other"
            )
            self.kinds[path] = (kind, member.linkname if member.issym() else "")
            added.add(path)
            parent = posixpath.dirname(path)
            while parent and parent not in self.kinds:  # implied by the path (tar may omit it)
                self.kinds[parent] = ("dir", "")
                parent = posixpath.dirname(parent)
            if path in USER_FILES or LIBC.fullmatch(name):
                if member.islnk():
                    linked = self.contents.get(posixpath.normpath(member.linkname.lstrip("/")))
                    if linked is not None:
                        self.contents[path] = linked
                elif member.isfile():
                    self.contents[path] = tar.extractfile(member).read()

    def _remove(self, path: str, keep: set[str], itself: bool = True) -> None:
        prefix = f"{path}/" if path else ""
        for known in [k for k in self.kinds if k.startswith(prefix) or (itself and k == path)]:
            if known not in keep:
                del self.kinds[known]
                self.contents.pop(known, None)

    def kind(self, path: str) -> str | None:
        return self.kinds.get(path.strip("/"), (None, ""))[0]

    def resolve(self, path: str) -> str | None:
        """Where `path` leads once symbolic links are followed; None when nothing is there."""
        pending = [part for part in path.split("/") if part]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                done = done[:-1]
                continue
            if part == ".":
                continue
            kind, target = self.kinds.get("/".join([*done, part]), (None, ""))
            if kind is None:
                return None
            if kind != "link":
                done.append(part)
                continue
            hops += 1
            if hops > 40:  # a loop
                return None
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                done = []
        return "/".join(done)

    def python(self, search: str) -> Python:
        """The python3 on the image's PATH: its real path and its version."""
        for directory in search.split(":"):
            found = self.resolve(f"{directory}/python3")
            if not found or self.kind(found) != "file":
                continue
            version = PYTHON.fullmatch(posixpath.basename(found))
            if not version:
                raise ProjectError(
                    f"base image {self.name}: /{found} is no python3.N, which would tell its version"
                )
            return Python(path=f"/{found}", version=version[1])
        raise ProjectError(
            f"base image {self.name}: no python3 on its PATH ({search}); "
            "BASE_IMAGE must have Python (see docs/image.md)"
        )

    def platform(self, architecture: str) -> str:
        """uv's name for the wheels that run on this image, e.g. x86_64-manylinux_2_36."""
        machine = MACHINES.get(architecture)
        if not machine:
            raise ProjectError(
                f"base image {self.name}: architecture {architecture!r}, "
                f"the build knows {', '.join(MACHINES)}"
            )
        versions = [
            max(map(int, GLIBC_VERSION.findall(data)), default=0)
            for path, data in self.contents.items()
            if LIBC.fullmatch(posixpath.basename(path))
        ]
        glibc = min(versions, default=0)
        if glibc < GLIBC_MINORS.start:
            raise ProjectError(
                f"base image {self.name}: no glibc 2.{GLIBC_MINORS.start} or newer; the wheels "
                "uv.lock pins are manylinux ones (glibc-based images: Debian, Ubuntu, ...)"
            )
        return f"{machine}-manylinux_2_{min(glibc, GLIBC_MINORS[-1])}"

    def with_entry(self, path: str, entry: str) -> bytes:
        """/etc/passwd or /etc/group with `entry` added, refused when its name or ID is taken."""
        if self.kind(path) != "file" or path not in self.contents:
            raise ProjectError(f"base image {self.name}: no /{path}")
        text = self.contents[path].decode("utf-8")
        name, _, ident = entry.split(":")[:3]
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) > 2 and (fields[0] == name or fields[2] == ident):
                raise ProjectError(
                    f"base image {self.name}: /{path} already has {line!r}, "
                    f"the image adds {entry.strip()!r}"
                )
        kept = text.rstrip("\n") + "\n" if text.strip() else ""
        return (kept + entry).encode("utf-8")
