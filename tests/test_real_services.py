"""The generated project against a team's real services, each a real server on 127.0.0.1 that a
fixture starts (tests/helpers): an S3 API (moto's server mode), PostgreSQL (Debian's),
`mlflow server` on that PostgreSQL with its artifacts proxied to that S3 and basic auth, and a
git server over HTTPS with a token (lighttpd + `git http-backend`, a throw-away CA).

Each test also stops a server between two steps: the step that needs it must fail with one line
naming the service and its URL (credentials redacted), leave nothing half-written, and pass when
run again once the server is back. Under CI=true a server that cannot start fails the test.

One xdist group: the module's servers start once, on one worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers.git_https import USER as GIT_USER
from helpers.git_https import GitHttpsServer
from helpers.gitops import PROJECT, commit_count, files, git, gitops, start, write_lineage
from helpers.gitops import env_name as gitops_env_name
from helpers.gitops import image as image_ref
from helpers.images import local_registry
from helpers.mlflow_server import ADMIN, MlflowServer
from helpers.postgres import PostgresServer
from helpers.project import MODEL_VENV, copy_project, exclusive, require_tool, run, setup_project
from helpers.s3 import BUCKET, S3Server
from helpers.servers import Server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-services")]

LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
# No cluster reads these GitOps repos: a deploy must not wait for its environment to answer.
NO_CLUSTER = {"DEPLOY_WAIT": "0"}
# botocore's own retry budget (its standard variable), so that each S3 outage fails in seconds
# rather than in ~35 s; the one-line failure is the same either way.
S3_RETRIES = {"AWS_MAX_ATTEMPTS": "2"}
PYTHON = str(MODEL_VENV / "bin" / "python")
DATA = "data/raw/breast_cancer.csv"
# The labels `make image` gives the image of the built Bento (deploy/image.py), without building it.
IMAGE_LABELS = """
import json
from pathlib import Path
from deploy.artifacts import BentoRecord
from deploy.image.__main__ import labels
bento = BentoRecord.require(Path.cwd())
print(json.dumps(labels(Path.cwd(), "a" * 40, "2026-01-01T00:00:00Z", bento)))
"""


# ---------------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    databases = ("mlflow", "mlflow_auth")
    with PostgresServer(tmp_path_factory.mktemp("postgres"), databases) as server:
        yield server


@pytest.fixture(scope="module")
def mlflow(s3, postgres, tmp_path_factory):
    """MLflow as teams run it: runs and registry in PostgreSQL, artifacts proxied to S3 (clients
    need no S3 credentials), basic auth with its user store in PostgreSQL too."""
    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow"),
        backend=postgres.uri("mlflow"),
        artifacts=f"s3://{BUCKET}/mlflow",
        extra_env={**s3.credentials, **LOOPBACK, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint},
        auth_database=postgres.uri("mlflow_auth"),
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    with GitHttpsServer(tmp_path_factory.mktemp("git-https")) as server:
        yield server


class BentoServer(Server):
    """`make serve` of a project that has run `make bento`."""

    name = "bento"

    def __init__(self, project: Path, env: dict[str, str]):
        super().__init__(project / "build")
        self.project, self._env = project, env
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["make", "-C", str(self.project), "serve", f"PORT={self.port}"]

    def env(self) -> dict[str, str]:
        return self._env

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def metadata(self) -> str:
        request = urllib.request.Request(
            f"{self.url}/metadata", data=b"", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read().decode()


# ---------------------------------------------------------------------------------- helpers
def make(project: Path, env: dict[str, str], *targets: str, check: bool = True):
    return run(["make", *targets], project, env, check=check)


def dvc(project: Path, env: dict[str, str], *args: str):
    return run([PYTHON, "-m", "dvc", *args], project, env)


def commit_all(project: Path, env: dict[str, str], message: str) -> None:
    run(["git", "add", "--all"], project, env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", message], project, env)


def one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exactly one `error:` line, naming what it must name."""
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def output_of(results: list[subprocess.CompletedProcess[str]]) -> str:
    return "".join(r.stdout + r.stderr for r in results)


def half_written(project: Path) -> list[str]:
    """Files of the DVC cache that are not complete objects (whose content hash is the name)."""
    cache = project / ".dvc" / "cache" / "files" / "md5"
    return [
        str(path)
        for path in (cache.rglob("*") if cache.is_dir() else [])
        if path.is_file()
        and hashlib.md5(path.read_bytes()).hexdigest()
        != path.parent.name + path.name.removesuffix(".dir")
    ]


# ---------------------------------------------------------------------- 2. DVC remote on S3
def test_dvc_remote_on_s3_push_then_a_fresh_clone_sets_up_trains_and_reproduces(
    s3, trained_project, model_env, tmp_path
):
    env = {**model_env, **s3.credentials, **LOOPBACK, **S3_RETRIES}
    secret = s3.credentials["AWS_SECRET_ACCESS_KEY"]
    # Nothing to install for any of the three clouds: DVC and MLflow find their clients.
    supports = run([PYTHON, "-m", "dvc", "version"], tmp_path, env).stdout
    assert {"s3", "gs", "azure"} <= set(re.findall(r"\b(s3|gs|azure)\b", supports)), supports
    run([PYTHON, "-c", "import boto3, google.cloud.storage, azure.storage.blob"], tmp_path, env)
    first = copy_project(trained_project, tmp_path / "first")
    remote = f"s3://{BUCKET}/dvc/{PROJECT}"
    # The one line of docs/going-to-production.md, plus the endpoint of an S3-compatible server.
    dvc(first, env, "remote", "add", "--default", "storage", remote)
    dvc(first, env, "remote", "modify", "storage", "endpointurl", s3.endpoint)
    commit_all(first, env, "DVC remote on S3; the trained model")
    names = f"DVC remote 'storage' ({remote}, endpoint {s3.endpoint})"
    results = []

    # S3 crashes before the pipeline pushes: one line; once it is back, the push goes through.
    s3.stop(crash=True)
    results.append(make(first, env, "push", check=False))
    one_line_failure(results[-1], names, "push failed")
    s3.start()
    results.append(make(first, env, "push"))
    assert names in results[-1].stdout
    assert any("/files/md5/" in key for key in s3.keys("dvc/"))

    # A fresh clone while S3 is down: setup fails with one line, and its cache holds no part.
    clone = tmp_path / "clone" / PROJECT
    run(["git", "clone", "--quiet", str(first), str(clone)], tmp_path, env)
    s3.stop(crash=True)
    with exclusive("model-venv"):
        results.append(make(clone, env, "setup", check=False))
    one_line_failure(results[-1], names, "pull failed")
    assert not (clone / DATA).exists() and half_written(clone) == []
    s3.start()  # back, but empty: moto keeps objects in memory, so the pipeline pushes again
    results.append(make(first, env, "push"))

    setup_project(clone, env)
    assert (clone / DATA).read_bytes() == (first / DATA).read_bytes()
    assert half_written(clone) == []
    results.append(make(clone, env, "train"))
    assert "Running stage" not in results[-1].stdout  # restored from the pushed run cache
    assert (clone / "models/model.pkl").read_bytes() == (first / "models/model.pkl").read_bytes()
    results.append(make(clone, env, "reproduce"))
    assert "reproduce: PASS" in results[-1].stdout
    assert secret not in output_of(results)


# --------------------------------------------------- 3. MLflow on PostgreSQL with S3 artifacts
def test_mlflow_on_postgresql_and_s3_through_train_bento_deploy_and_teardown(
    mlflow, s3, git_server, trained_project, model_env, tmp_path
):
    from mlflow import MlflowClient

    project = copy_project(trained_project, tmp_path)
    branch = "feature/real-mlflow"
    run(["git", "checkout", "--quiet", "-b", branch], project, model_env)
    env_name = gitops_env_name(project, branch)
    alias = f"env-{env_name}"
    password = mlflow.admin_password
    env = {
        **model_env,
        **LOOPBACK,
        **NO_CLUSTER,
        "MLFLOW_TRACKING_URI": mlflow.uri_with_credentials(),  # credentials in the URI
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "GITOPS_REPO": git_server.bare_repo("mlflow-e2e.git"),
        "GITOPS_TOKEN": git_server.token,
        "GIT_SSL_CAINFO": str(git_server.ca),
    }
    toolkit = {**env, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"}
    registry = MlflowClient(mlflow.uri_with_credentials(), mlflow.uri_with_credentials())
    versions = len(registry.search_model_versions(f"name = '{PROJECT}'"))
    results = []

    # MLflow crashes before `make train` logs the model: one line, and nothing in the registry.
    mlflow.stop(crash=True)
    results.append(make(project, env, "train", check=False))
    one_line_failure(results[-1], f"MLflow {mlflow.uri}: unreachable")
    mlflow.start()
    assert len(registry.search_model_versions(f"name = '{PROJECT}'")) == versions
    results.append(make(project, env, "train"))

    record = json.loads((project / "build" / "lineage.json").read_text())
    assert record["mlflow_tracking_uri"] == mlflow.uri
    run_id, version = record["mlflow_run_id"], record["model_version"]
    assert registry.get_run(run_id).info.status == "FINISHED"
    assert alias not in registry.get_registered_model(PROJECT).aliases  # moves at deploy
    assert len(registry.search_model_versions(f"name = '{PROJECT}'")) == versions + 1
    stored = s3.keys("mlflow/")  # the artifacts went through the server into S3
    assert any(run_id in key and key.endswith("schema.json") for key in stored), stored
    assert any(key.endswith("model.pkl") for key in stored), stored

    results.append(make(project, env, "bento"))
    assert f"from {PROJECT} version {version}" in results[-1].stdout
    labels = run([PYTHON, "-c", IMAGE_LABELS], project, toolkit).stdout
    assert json.loads(labels)["mlflow.run-id"] == run_id
    with BentoServer(project, env) as served:
        metadata = served.metadata()
    assert json.loads(metadata)["mlflow_tracking_uri"] == mlflow.uri

    deploy = [PYTHON, "-m", "deploy.gitops", "deploy", "--image", image_ref(1)]
    results.append(run(deploy, project, toolkit))
    assert f"MLflow alias {PROJECT}@{alias} -> version {version}" in results[-1].stdout
    assert registry.get_model_version_by_alias(PROJECT, alias).run_id == run_id
    values = git(
        git_server.path("mlflow-e2e.git"), "show", f"main:envs/{PROJECT}/{env_name}/values.yaml"
    )
    assert yaml.safe_load(values)["lineage"]["mlflowRunId"] == run_id
    results.append(run([PYTHON, "-m", "deploy.gitops", "teardown"], project, toolkit))
    assert f"MLflow alias {PROJECT}@{alias} deleted" in results[-1].stdout
    assert alias not in registry.get_registered_model(PROJECT).aliases
    assert files(git_server.path("mlflow-e2e.git")) == set()

    # The credentials are nowhere: logs, records, the values file, image labels, /metadata,
    # the Bento, and what MLflow stored about the run.
    run_data = registry.get_run(run_id).data
    seen = {
        "logs": output_of(results) + (project / "build" / "bento.log").read_text(),
        "records": "".join(p.read_text() for p in (project / "build").glob("*.json")),
        "values file": values,
        "image labels": labels,
        "/metadata": metadata,
        "bento": "".join(p.read_text() for p in Path(env["BENTOML_HOME"]).rglob("*.yaml")),
        "run": json.dumps({**run_data.params, **run_data.tags}),
    }
    for where, text in seen.items():
        assert password not in text and f"{ADMIN}:" not in text, where


# ------------------------------------------------------------ 4. GitOps over HTTPS with a token
GIT_SPY = """#!/usr/bin/env bash
# Runs the real git, then records the repository's config: the token must never be in one.
"{git}" "$@"; status=$?
[[ -f .git/config ]] && cat .git/config >>"$GIT_CONFIG_SPY"
exit $status
"""


def test_gitops_repo_over_https_with_a_token(git_server, baked_project, tmp_path):
    project = Path(shutil.copytree(baked_project, tmp_path / PROJECT, symlinks=True))
    write_lineage(project, {"accuracy": 0.9})
    url = git_server.bare_repo("https-e2e.git")
    repo = git_server.path("https-e2e.git")
    spy_bin, home, scratch = tmp_path / "bin", tmp_path / "home", tmp_path / "tmp"
    for directory in (spy_bin, home, scratch):
        directory.mkdir()
    (spy_bin / "git").write_text(GIT_SPY.format(git=shutil.which("git")))
    (spy_bin / "git").chmod(0o755)
    spy_log = tmp_path / "git-configs.log"
    env = {
        **LOOPBACK,
        **NO_CLUSTER,
        "GITOPS_REPO": url,
        "GITOPS_TOKEN": git_server.token,
        "GIT_SSL_CAINFO": str(git_server.ca),
        "PATH": f"{spy_bin}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "TMPDIR": str(scratch),
        "GIT_CONFIG_SPY": str(spy_log),
    }
    basic = base64.b64encode(f"{GIT_USER}:{git_server.token}".encode()).decode()
    results = []

    def cli(*args: str, **changes: str | None):
        """The CLI with `env` changed (a None value unsets the variable)."""
        changed = {k: v for k, v in (env | changes).items() if v is not None}
        results.append(gitops(project, *args, **changed))
        assert not any(scratch.iterdir()), "a temporary clone was left behind"
        return results[-1]

    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def envs() -> set[str]:
        return {path.split("/")[2] for path in files(repo)}

    ok("deploy", "--branch=feat/one", "--image", image_ref(1))
    assert envs() == {gitops_env_name(project, "feat/one")}
    assert "1 environment(s)" in ok("envs")

    # Concurrent deploys through the server: every one lands, in one commit each.
    branches = [f"feat/c{i}" for i in range(6)]
    running = [
        start(project, "deploy", f"--branch={b}", "--image", image_ref(i), **env)
        for i, b in enumerate(branches)
    ]
    for process in running:
        stdout, stderr = process.communicate(timeout=600)
        results.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
        assert process.returncode == 0, stderr
    assert envs() == {gitops_env_name(project, b) for b in ["feat/one", *branches]}
    assert commit_count(repo) == 7

    ok("teardown", "--branch=feat/one")
    ok("gc", "--live-branch", "main", "--live-branch", branches[0])
    assert envs() == {gitops_env_name(project, branches[0])}
    head = git(repo, "rev-parse", "main")

    # A wrong token: one line, and nothing changed (the tree, the history, the temp dir).
    wrong = "glpat-wrong-" + git_server.token[-6:][::-1]
    failed = cli("deploy", "--branch=feat/wrong", "--image", image_ref(9), GITOPS_TOKEN=wrong)
    line = one_line_failure(failed, f"GitOps repo {url}: authentication failed", "GITOPS_TOKEN")
    assert wrong not in failed.stdout + failed.stderr
    # Without the test CA: git's certificate error, and what to set.
    failed = cli("deploy", "--branch=feat/ca", "--image", image_ref(9), GIT_SSL_CAINFO=None)
    one_line_failure(failed, f"GitOps repo {url}:", "certificate", "GIT_SSL_CAINFO")
    # The server crashes between two deploys: one line; once it is back, the deploy lands.
    git_server.stop(crash=True)
    failed = cli("deploy", "--branch=feat/down", "--image", image_ref(8))
    one_line_failure(failed, f"GitOps repo {url}:", "Failed to connect")
    assert git(repo, "rev-parse", "main") == head
    git_server.start()
    ok("deploy", "--branch=feat/down", "--image", image_ref(8))
    assert gitops_env_name(project, "feat/down") in envs()

    # The token never reaches a git config, a commit, the output or an error message.
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    configs = spy_log.read_text() + "".join(p.read_text() for p in home.rglob("*") if p.is_file())
    assert "[core]" in configs  # the spy saw the clones' configs
    for secret in (git_server.token, basic):
        assert secret.encode() not in objects
        assert secret not in configs
        assert secret not in output_of(results)
        assert secret not in line


# ------------------------------------------------------------ 6. docs/going-to-production.md
CHECK = re.compile(r"^Check\b(?:(?!\n\n).)*\n\n```sh\n(.*?)\n```", re.MULTILINE | re.DOTALL)


def test_every_check_of_going_to_production_passes_against_the_real_services(
    s3, mlflow, git_server, trained_project, model_env, tmp_path
):
    for tool in ("buildah", "skopeo"):
        require_tool(tool)
    project = copy_project(trained_project, tmp_path / "project")
    page = (project / "docs" / "going-to-production.md").read_text()
    checks = CHECK.findall(page)
    assert len(checks) == len(re.findall(r"^## ", page, re.MULTILINE))  # one check per step
    # Step 2 as the page says, with this machine's S3 endpoint.
    dvc(project, model_env, "remote", "add", "--default", "storage", f"s3://{BUCKET}/docs")
    dvc(project, model_env, "remote", "modify", "storage", "endpointurl", s3.endpoint)
    commit_all(project, model_env, "DVC remote on S3")
    with local_registry(tmp_path / "registry") as registry:
        env = {
            **model_env,
            **s3.credentials,
            **LOOPBACK,
            **NO_CLUSTER,
            "MLFLOW_TRACKING_URI": mlflow.uri,
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": mlflow.admin_password,
            "IMAGE_REPOSITORY": f"{registry}/{PROJECT}",
            "REGISTRY_USER": "ci",
            "REGISTRY_PASSWORD": "registry-password",
            "REGISTRY_TLS_VERIFY": "false",
            "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"),
            "GITOPS_REPO": git_server.bare_repo("docs.git"),
            "GITOPS_TOKEN": git_server.token,
            "GIT_SSL_CAINFO": str(git_server.ca),
            "PREVIEW_DOMAIN": "preview.example.com",
        }
        for check in checks:
            result = run(["bash", "-euo", "pipefail", "-c", check], project, env, check=False)
            assert result.returncode == 0, (
                f"{check}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
