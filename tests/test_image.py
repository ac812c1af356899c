"""`make image`: the generated project's image build (deploy/image/), which runs nothing inside the
image and so needs no privileges, no user namespace and no container runtime.

The fast tests drive deploy/image against a base image written here as an OCI layout (merged
/usr, whiteouts, a passwd), with fake `skopeo` and `uv`: what the image holds and how it starts,
that the same inputs give the same digest, that credentials never reach argv or output, and the
reuse of an image already pushed. The slow tests build the real image of a trained project the
way an unprivileged runner would (a non-root user, no buildah, unshare or mount on its PATH,
every process traced for namespace and mount system calls), push it to a local registry, and
check it from the outside (skopeo), the inside (its root filesystem) and by running it
read-only.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import marshal
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.images import (
    forbidden_calls,
    free_port,
    programs,
    serve_read_only,
    skopeo_inspect,
    wait_ready,
)
from helpers.project import copy_project, run

SERVICE_UID = 1034
# Tools a runtime image must not carry: compilers, build tools, git, and uv (build-only here).
FORBIDDEN = ("gcc", "cc", "c++", "g++", "clang", "make", "git", "uv")
BIN_DIRS = ("usr/bin", "usr/local/bin", "bin", "usr/sbin", "opt/venv/bin")
# Sticky world-writable directories are fine: on a read-only root they are read-only too.
STICKY_OK = ("tmp", "var/tmp", "run/lock", "dev/shm")
# The compressed size of the image `make image` built with buildah before (base 60.7 MB, one layer
# of 111.3 MB): the assembled one must be no bigger.
BUILDAH_IMAGE_BYTES = 172_007_924

FAKE_SKOPEO = r"""
import json, os, shutil, stat, sys
args = sys.argv[1:]
log = os.environ["FAKE_LOG"]
with open(log, "a") as file:
    file.write("skopeo " + " ".join(args) + "\n")
for option in ("--authfile", "--dest-authfile"):
    if option in args:  # what skopeo would read, and who else could
        auth = args[args.index(option) + 1]
        with open(log + ".auth", "w") as file:
            json.dump({"mode": stat.S_IMODE(os.stat(auth).st_mode), "file": json.load(open(auth))}, file)
source, target = args[-2:]
if args[0] == "inspect":
    answer = os.environ["FAKE_SKOPEO_ANSWER"]
    if os.path.exists(answer):
        sys.exit(print(open(answer).read()))
    sys.exit("manifest unknown")
if source.startswith("docker://") and target.startswith("oci:"):
    shutil.copytree(os.environ["FAKE_BASE"], target.split(":")[1])
elif source.startswith("oci:"):
    layout = source.split(":")[1]
    pushed = os.environ["FAKE_PUSHED"]
    shutil.rmtree(pushed, ignore_errors=True)
    shutil.copytree(layout, pushed)
    index = json.load(open(os.path.join(layout, "index.json")))
    (named,) = [m for m in index["manifests"] if m["annotations"][
        "org.opencontainers.image.ref.name"] == source.split(":")[2]]
    with open(args[args.index("--digestfile") + 1], "w") as file:
        file.write(named["digest"])
"""
# Makes a small venv where `uv sync` would (a package, its tests, a script and its RECORD).
FAKE_UV = r"""
import os, subprocess, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as file:
    file.write("uv " + " ".join(args) + f" SSL_CERT_FILE={os.environ.get('SSL_CERT_FILE')}\n")
venv = Path(os.environ["UV_PROJECT_ENVIRONMENT"])
subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
site = next(venv.glob("lib/python*/site-packages"))
(site / "demo" / "tests").mkdir(parents=True)
(site / "demo" / "__init__.py").write_text("VALUE = 1\n")
(site / "demo" / "tests" / "test_demo.py").write_text("def test(): pass\n")
script = f"#!{venv}/bin/python\nimport demo\n"
(venv / "bin" / "demo").write_text(script)
(venv / "bin" / "demo").chmod(0o755)
(site / "demo-1.0.dist-info").mkdir()
(site / "demo-1.0.dist-info" / "RECORD").write_text(
    f"demo/__init__.py,sha256=x,10\n../../../bin/demo,sha256=y,{len(script)}\n")
(venv / ".lock").touch(mode=0o666)
"""


# ------------------------------------------------------------------------------- fast tests
def tar_layer(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    """A gzip layer of (path, kind, data-or-link-target) entries, in that order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, kind, data in entries:
            info = tarfile.TarInfo(path)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_blob(layout: Path, data: bytes) -> str:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / sha256(data).removeprefix("sha256:")).write_bytes(data)
    return sha256(data)


PASSWD = b"root:x:0:0:root:/root:/bin/bash\n"


def base_layout(layout: Path, passwd: bytes = PASSWD, python: bool = True) -> str:
    """A Debian-like base image with merged /usr, as skopeo would copy it: layer two replaces
    /usr/bin/python3 (whiteout) and empties /usr/local/bin (opaque); returns its manifest digest.
    Its only real python3 is /usr/bin/python3.11, found on PATH through /bin -> usr/bin."""
    libc = b"\0GLIBC_2.2.5\0GLIBC_2.17\0GLIBC_2.36\0GLIBC_PRIVATE\0"
    lower = [
        ("bin", "link", "usr/bin"),
        ("lib", "link", "usr/lib"),
        ("etc", "dir", b""),
        ("etc/passwd", "file", passwd),
        ("etc/group", "file", b"root:x:0:\n"),
        ("home", "dir", b""),
        ("opt", "dir", b""),
        ("tmp", "dir", b""),
        ("usr/lib/x86_64-linux-gnu/libc.so.6", "file", libc),
        ("usr/local/bin/python3", "file", b"an unversioned python3, removed above"),
    ]
    upper = [("usr/local/bin/.wh..wh..opq", "file", b"")]
    if python:
        lower += [("usr/bin/python3.11", "file", b"ELF"), ("usr/bin/python3", "file", b"old")]
        upper += [("usr/bin/python3", "link", "python3.11"), ("usr/bin/.wh.python3", "file", b"")]
    layers = [tar_layer(lower), tar_layer(upper)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["python3"],
            "Labels": {"org.opencontainers.image.title": "debian-python", "base.only": "kept"},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": [sha256(gzip.decompress(layer)) for layer in layers],
        },
        "history": [{"created_by": "debootstrap"}, {"created_by": "python3 link"}],
    }
    config_data = json.dumps(config).encode()

    def descriptor(media_type: str, data: bytes) -> dict:
        return {"mediaType": media_type, "digest": write_blob(layout, data), "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config_data),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", x) for x in layers],
    }
    named = descriptor(manifest["mediaType"], json.dumps(manifest).encode())
    named["annotations"] = {"org.opencontainers.image.ref.name": "base"}
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [named]}))
    return named["digest"]


def fake_bento(home: Path) -> Path:
    """A Bento in a BentoML store layout, with one model kept beside it (as `bentoml build` does)."""
    bento = home / "bentos" / "demo" / "v1"
    (bento / "env" / "python").mkdir(parents=True)
    (bento / "env" / "python" / "requirements.txt").write_text("bentoml==1.4.39\n")
    (bento / "bento.yaml").write_text("services:\n- models:\n  - tag: demo:m1\n")
    (bento / "src" / "__pycache__").mkdir(parents=True)
    (bento / "src" / "__pycache__" / "service.cpython-311.pyc").write_bytes(b"stale")
    model = home / "models" / "demo" / "m1"
    model.mkdir(parents=True)
    (model / "model.yaml").write_text("name: demo\n")
    model.chmod(0o700)  # like the store: the image must still make it readable
    return bento


def image_script(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.image"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Pushed:
    """The OCI layout the fake skopeo received: manifest, configuration, layer members."""

    def __init__(self, layout: Path) -> None:
        self.layout = layout
        index = json.loads((layout / "index.json").read_text())
        (named,) = [
            m
            for m in index["manifests"]
            if m["annotations"]["org.opencontainers.image.ref.name"] == "image"
        ]
        self.digest = named["digest"]
        self.manifest = self.blob_json(named["digest"])
        self.config = self.blob_json(self.manifest["config"]["digest"])

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    def blob_json(self, digest: str) -> dict:
        return json.loads(self.blob(digest))

    def layer(self, number: int) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
        data = gzip.decompress(self.blob(self.manifest["layers"][number]["digest"]))
        assert sha256(data) == self.config["rootfs"]["diff_ids"][number]
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == sorted(m.name for m in members)
            return {
                m.name.rstrip("/"): (m, tar.extractfile(m).read() if m.isfile() else b"")
                for m in members
            }


@pytest.fixture
def fake_project(baked_project, model_env, tmp_path):
    """A baked project with a Bento record, the fake tools on PATH and a base image layout:
    (project, env, log, base manifest digest)."""
    project = copy_project(baked_project, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, script in (("skopeo", FAKE_SKOPEO), ("uv", FAKE_UV)):
        (bin_dir / tool).write_text(f"#!{sys.executable}\n{script}")
        (bin_dir / tool).chmod(0o755)
    bento = fake_bento(tmp_path / "bentoml")
    (project / "build").mkdir()
    (project / "build" / "bento.json").write_text(
        json.dumps(
            {
                "tag": "demo:v1",
                "path": str(bento),
                "bento_model": "demo:m1",
                "model_name": "demo",
                "model_version": "7",
                "model_alias": "production",
                "mlflow_run_id": "run123",
                "mlflow_tracking_uri": "sqlite:///mlflow.db",
                "git_commit": "f" * 40,
                "git_branch": "main",
                "data_md5": "0" * 32,
            }
        )
    )
    (tmp_path / "base").mkdir()
    base_digest = base_layout(tmp_path / "base")
    log = tmp_path / "calls.log"
    env = {
        key: value
        for key, value in model_env.items()
        if not key.startswith(("CI_", "GITHUB_", "REGISTRY_", "BASE_IMAGE", "EXTRA_CA", "UV_"))
    }
    env.update(
        {
            "PATH": f"{bin_dir}:{env['PATH']}",
            "PYTHONPATH": f"{project / 'src'}:{project}",
            "FAKE_LOG": str(log),
            "FAKE_SKOPEO_ANSWER": str(tmp_path / "skopeo.json"),
            "FAKE_BASE": str(tmp_path / "base"),
            "FAKE_PUSHED": str(tmp_path / "pushed"),
            "IMAGE_REPOSITORY": "registry.example.com/team/demo",
            "BASE_IMAGE": "registry.example.com/base/debian-python:3.11",
        }
    )
    return project, env, log, base_digest


def test_image_is_assembled_from_files_and_the_same_twice(fake_project, tmp_path):
    project, env, log, base_digest = fake_project
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    env["EXTRA_CA_CERTS"] = str(tmp_path / "ca.pem")
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    commit = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    committed = run(["git", "show", "-s", "--format=%cI", "HEAD"], project, env).stdout.strip()
    pushed = Pushed(tmp_path / "pushed")
    assert json.loads((project / "build" / "image.json").read_text())["digest"] == pushed.digest

    # uv built the venv for the base image's Python and glibc, from the cache first.
    (uv,) = [line for line in log.read_text().splitlines() if line.startswith("uv ")]
    assert "--frozen --no-default-groups --no-install-project" in uv
    assert "--python 3.11 --python-platform x86_64-manylinux_2_36 --offline" in uv
    assert f"SSL_CERT_FILE={tmp_path / 'ca.pem'}" in uv

    # The base image's layers, then the runtime (venv, user) and the service (Bento) layers.
    base = json.loads((tmp_path / "base" / "index.json").read_text())["manifests"][0]
    base_manifest = pushed.blob_json(base["digest"])
    assert pushed.manifest["layers"][:2] == base_manifest["layers"]
    assert len(pushed.manifest["layers"]) == 4
    settings = pushed.config["config"]
    assert settings["User"] == f"{SERVICE_UID}:{SERVICE_UID}"
    assert settings["WorkingDir"] == "/home/bentoml/bento"
    assert settings["ExposedPorts"] == {"3000/tcp": {}}
    assert settings["Entrypoint"] == ["/opt/venv/bin/bentoml", "serve", "/home/bentoml/bento"]
    assert "Cmd" not in settings  # the base's `python3` would be an argument of bentoml serve
    variables = dict(item.split("=", 1) for item in settings["Env"])
    assert variables["PATH"] == "/opt/venv/bin:/usr/local/bin:/bin"
    assert variables["HOME"] == "/tmp" and variables["PYTHONDONTWRITEBYTECODE"] == "1"
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels["org.opencontainers.image.title"] == project.name
    assert labels["org.opencontainers.image.base.name"] == env["BASE_IMAGE"]
    assert labels["org.opencontainers.image.base.digest"] == base_digest
    assert labels["mlflow.run-id"] == "run123" and labels["mlflow.model-version"] == "7"
    assert labels["base.only"] == "kept"
    # Created when committed, not when built: the same commit builds the same image.
    created = datetime.fromisoformat(labels["org.opencontainers.image.created"])
    assert created == datetime.fromisoformat(committed).astimezone(UTC)
    assert pushed.config["created"] == labels["org.opencontainers.image.created"]
    assert len(pushed.config["history"]) == 4

    runtime, service = pushed.layer(2), pushed.layer(3)
    for info, _ in [*runtime.values(), *service.values()]:
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
        assert info.issym() or info.mode in (0o755, 0o644), info.name
    # The base's directories keep their metadata: the layers add only what is new.
    assert not {"etc", "opt", "home"} & (runtime.keys() | service.keys())
    service_user = b"bentoml:x:1034:1034::/home/bentoml:/usr/sbin/nologin\n"
    assert runtime["etc/passwd"][1] == PASSWD + service_user
    assert runtime["etc/group"][1] == b"root:x:0:\nbentoml:x:1034:\n"
    # The venv lives at /opt/venv and runs the base image's interpreter.
    venv = "opt/venv"
    links = [info.linkname for name, (info, _) in runtime.items() if "/bin/python" in name]
    assert [link for link in links if link.startswith("/")] == ["/usr/bin/python3.11"]
    script_info, script = runtime[f"{venv}/bin/demo"]
    assert script == b"#!/opt/venv/bin/python\nimport demo\n" and script_info.mode == 0o755
    site = f"{venv}/lib/python3.11/site-packages"
    record = list(csv.reader(runtime[f"{site}/demo-1.0.dist-info/RECORD"][1].decode().splitlines()))
    digest = base64.urlsafe_b64encode(hashlib.sha256(script).digest()).rstrip(b"=").decode()
    assert record[1] == ["../../../bin/demo", f"sha256={digest}", str(len(script))]
    assert b"home = /usr/bin\n" in runtime[f"{venv}/pyvenv.cfg"][1]
    assert not [name for name in runtime if "/tests" in name or name.endswith(".lock")]
    scratch = f"{tempfile.gettempdir()}/image-".encode()  # where deploy/image builds
    assert not [name for name, (_, data) in runtime.items() if scratch in data]
    # Bytecode for /opt/venv, never checked against the (fixed) source times.
    pyc = runtime[f"{site}/demo/__pycache__/__init__.cpython-311.pyc"][1]
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked (PEP 552)
    assert marshal.loads(pyc[16:]).co_filename == f"/{site}/demo/__init__.py"
    # The Bento with its model, readable by the service user; no bytecode of the build machine.
    bento = "home/bentoml/bento"
    assert service["home/bentoml"][0].isdir()
    assert service[f"{bento}/models/demo/m1/model.yaml"][0].mode == 0o644
    assert service[f"{bento}/models/demo/m1"][0].mode == 0o755
    assert service[f"{bento}/models/demo/latest"][1] == b"m1"
    assert f"{bento}/env/python/requirements.txt" in service
    assert not [name for name in service if "__pycache__" in name]

    # Built again (in another temporary directory): the same image, to the byte.
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert Pushed(tmp_path / "pushed").digest == pushed.digest


def test_image_credentials_tls_and_reuse(fake_project, tmp_path):
    project, env, log, _ = fake_project
    env.update(REGISTRY_USER="robot", REGISTRY_PASSWORD="s3cret-Value")
    # A clone URL with a token in it must not end up in the source label.
    run(
        ["git", "remote", "add", "origin", "https://ci:t0ken@git.example.com/g/r.git"], project, env
    )
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert "s3cret-Value" not in calls + result.stdout + result.stderr
    auth = json.loads((tmp_path / "calls.log.auth").read_text())
    token = base64.b64encode(b"robot:s3cret-Value").decode()
    assert auth == {"mode": 0o600, "file": {"auths": {"registry.example.com": {"auth": token}}}}
    image = f"registry.example.com/team/demo:{run(['git', 'rev-parse', 'HEAD'], project, env).stdout[:8]}"
    (inspect,) = [line for line in calls.splitlines() if line.startswith("skopeo inspect")]
    assert "--tls-verify=true --authfile" in inspect and inspect.endswith(f"docker://{image}")
    (pull, push) = [line for line in calls.splitlines() if line.startswith("skopeo copy")]
    assert f"--src-tls-verify=true docker://{env['BASE_IMAGE']} oci:" in pull
    assert "--preserve-digests" in push and "--dest-tls-verify=true --dest-authfile" in push
    assert push.endswith(f":image docker://{image}")
    labels = Pushed(tmp_path / "pushed").config["config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/g/r.git"

    # A registry on this machine: plain HTTP, and no login: GitLab's job token is for GitLab's
    # registry only, never offered to the registry IMAGE_REPOSITORY names.
    log.unlink()
    (tmp_path / "calls.log.auth").unlink()
    del env["REGISTRY_USER"], env["REGISTRY_PASSWORD"]
    job_token = {"CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "job-Token-1"}
    env.update(job_token, CI_REGISTRY="registry.gitlab.example")
    env["IMAGE_REPOSITORY"] = "127.0.0.1:5000/demo"
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert "authfile" not in calls and not (tmp_path / "calls.log.auth").exists()
    assert "inspect --retry-times=3 --tls-verify=false docker://127.0.0.1:5000/demo:" in calls
    assert "--dest-tls-verify=false oci:" in calls

    # Pushing to GitLab's own registry offers the job token, in the auth file.
    env["CI_REGISTRY"] = "127.0.0.1:5000"
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    token = base64.b64encode(b"gitlab-ci-token:job-Token-1").decode()
    auth = json.loads((tmp_path / "calls.log.auth").read_text())["file"]
    assert auth == {"auths": {"127.0.0.1:5000": {"auth": token}}}
    assert "job-Token-1" not in log.read_text() + result.stdout + result.stderr

    # Run again with the registry holding this build: nothing is pulled, built or pushed.
    built = Pushed(tmp_path / "pushed").config["config"]["Labels"]
    answer = {"Digest": "sha256:feed", "Labels": built}
    (tmp_path / "skopeo.json").write_text(json.dumps(answer))
    log.unlink()
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert "not rebuilt" in result.stdout
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["inspect"]
    assert json.loads((project / "build" / "image.json").read_text())["digest"] == "sha256:feed"

    # Another model on the same commit is another build.
    answer["Labels"] = {**built, "mlflow.model-version": "6"}
    (tmp_path / "skopeo.json").write_text(json.dumps(answer))
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert "uv sync" in log.read_text()


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ({"python": False}, "no python3 on its PATH (/usr/local/bin:/bin)"),
        (
            {"passwd": PASSWD + b"svc:x:1034:1034::/srv:/bin/sh\n"},
            "/etc/passwd already has 'svc:x:1034:1034::/srv:/bin/sh'",
        ),
    ],
    ids=["no-python", "uid-taken"],
)
def test_image_refuses_a_base_it_cannot_build_on(fake_project, tmp_path, base, message):
    project, env, _, _ = fake_project
    for path in (tmp_path / "base").iterdir():
        path.unlink() if path.is_file() else shutil.rmtree(path)
    base_layout(tmp_path / "base", **base)
    result = image_script(project, env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: base image {env['BASE_IMAGE']}: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pushed").exists()


def test_forbidden_calls_are_found_in_an_strace_log(tmp_path):
    log = tmp_path / "strace.log"
    log.write_text(
        '2526  execve("/usr/bin/unshare", ["unshare", "--user", "true"], 0x7f /* 3 vars */) = 0\n'
        "2526  unshare(CLONE_NEWUSER) = 0\n"
        "15534 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}, 88) = 15535\n"
        "15536 clone(child_stack=NULL, flags=CLONE_NEWNS|SIGCHLD) = 15537\n"
        '15535 execve("/tmp/bin/skopeo", ["skopeo", "copy"], 0x55 /* 26 vars */) = 0\n'
        "15535 <... execve resumed>)             = 0\n"
    )
    found = [line.split()[1].split("(")[0] for line in forbidden_calls(log)]
    assert found == ["execve", "unshare", "clone"]
    assert programs(log) == {"unshare", "skopeo"}


def test_image_script_explains_a_missing_bento(baked_project, model_env, tmp_path):
    project = copy_project(baked_project, tmp_path)
    env = {**model_env, "PYTHONPATH": f"{project / 'src'}:{project}"}
    result = image_script(project, env)
    assert result.returncode != 0
    assert "run `make bento` first" in result.stderr


# ------------------------------------------------------------------------------- slow tests
# The image fixtures (image_env, built_image, image_rootfs) live in conftest.py.
@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_build_needs_no_privileges_namespaces_or_container_tools(built_image):
    _, builder, record, trace = built_image
    assert builder.uid != 0
    assert {"make", "python", "uv", "skopeo"} <= programs(trace)  # the trace saw the build
    assert forbidden_calls(trace) == []
    assert record["digest"].startswith("sha256:")


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_pushed_image_is_the_recorded_digest_and_no_bigger(built_image):
    _, builder, record, _ = built_image
    assert record["tag"] == builder.git("rev-parse", "HEAD")[:8]
    assert skopeo_inspect(f"{record['repository']}:{record['tag']}")["Digest"] == record["digest"]
    manifest = skopeo_inspect(record["reference"], "--raw")
    size = sum(layer["size"] for layer in manifest["layers"])
    print(f"\nimage: {size / 1e6:.1f} MB compressed ({len(manifest['layers'])} layers)")
    assert size <= BUILDAH_IMAGE_BYTES * 1.02


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_is_reproducible(built_image, image_env):
    """The same commit, Bento and base built again (the reuse check does not see the first: another
    repository) give the same digest."""
    _, builder, record, _ = built_image
    registry, _ = image_env
    builder.make("image", IMAGE_REPOSITORY=f"{registry}/{builder.project.name}-again")
    again = json.loads((builder.project / "build" / "image.json").read_text())
    assert again["repository"] != record["repository"]
    assert again["digest"] == record["digest"]


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_labels_trace_back_to_commit_and_mlflow_run(built_image, image_env):
    project, builder, record, _ = built_image
    labels = skopeo_inspect(record["reference"])["Labels"]
    lineage = json.loads((project / "build" / "lineage.json").read_text())
    bento = json.loads((project / "build" / "bento.json").read_text())
    committed = builder.git("show", "-s", "--format=%cI", "HEAD")
    assert labels["org.opencontainers.image.revision"] == builder.git("rev-parse", "HEAD").strip()
    assert labels["org.opencontainers.image.title"] == project.name
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.base.name"] == image_env[1]["BASE_IMAGE"]
    base = skopeo_inspect(image_env[1]["BASE_IMAGE"])["Digest"]
    assert labels["org.opencontainers.image.base.digest"] == base
    created = datetime.fromisoformat(labels["org.opencontainers.image.created"])
    assert created == datetime.fromisoformat(committed.strip()).astimezone(UTC)
    assert labels["mlflow.run-id"] == lineage["mlflow_run_id"]
    assert labels["mlflow.model-version"] == lineage["model_version"]
    assert labels["bentoml.tag"] == bento["tag"]


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_runs_as_fixed_non_root_user_that_can_write_only_tmp(built_image, image_rootfs):
    _, _, record, _ = built_image
    config = skopeo_inspect(record["reference"], "--config")["config"]
    assert config["User"] == f"{SERVICE_UID}:{SERVICE_UID}"
    writable = []
    for directory, dirs, files in os.walk(image_rootfs):
        relative = os.path.relpath(directory, image_rootfs)
        if relative.startswith(("proc", "sys", "dev")):
            dirs.clear()
            continue
        for name in [*dirs, *files]:
            info = os.lstat(os.path.join(directory, name))
            path = os.path.normpath(os.path.join(relative, name))
            if stat.S_ISLNK(info.st_mode) or path in STICKY_OK:
                continue
            if (
                info.st_uid == SERVICE_UID
                or info.st_mode & stat.S_IWOTH
                or (info.st_gid == SERVICE_UID and info.st_mode & stat.S_IWGRP)
            ):
                writable.append(path)
    assert writable == []


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_has_no_compilers_git_or_build_leftovers(built_image, image_rootfs):
    _, builder, _, _ = built_image
    found = [
        f"{directory}/{tool}"
        for directory in BIN_DIRS
        for tool in FORBIDDEN
        if os.path.lexists(image_rootfs / directory / tool)
    ]
    assert found == []
    venv = image_rootfs / "opt" / "venv"
    assert (venv / "bin" / "bentoml").is_file()
    assert list((image_rootfs / "home/bentoml/bento/models").glob("*/*/model.yaml"))
    assert not list(venv.glob("lib/python*/site-packages/**/tests"))
    # Nothing names the directories the build ran in.
    traces = [str(builder.workspace).encode(), b"/tmp/image-"]
    leaked = [
        str(path.relative_to(image_rootfs))
        for path in venv.rglob("*")
        if path.is_file() and not path.is_symlink() and any(t in path.read_bytes() for t in traces)
    ]
    assert leaked == []


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_serves_on_a_read_only_root(built_image, image_rootfs, tmp_path):
    project, _, record, _ = built_image
    config = skopeo_inspect(record["reference"], "--config")["config"]
    port = free_port()
    log = tmp_path / "serve.log"
    # As the chart runs it: the image's entrypoint and env, BENTOML_PORT set, only /tmp writable.
    env = {"BENTOML_HOST": "127.0.0.1", "BENTOML_PORT": str(port)}
    with serve_read_only(image_rootfs, config, env, log) as process:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=180, log=log, process=process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metadata",
            data=b"{}",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.load(response)
    lineage = json.loads((project / "build" / "lineage.json").read_text())
    assert served["model_version"] == lineage["model_version"]
    assert served["mlflow_run_id"] == lineage["mlflow_run_id"]
