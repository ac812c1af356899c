"""Verified rollout: `python -m deploy.gitops deploy` is green only once the environment serves
what it deployed. The real image is served as the chart renders its pod from the values file the
deploy committed (an Argo CD stand-in), reached through DEPLOY_BASE_URL on 127.0.0.1; Argo CD's
REST API is a stub on 127.0.0.1 answering Argo CD-shaped JSON (no Argo CD can run here)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from helpers.charts import (
    BENTO_CHART,
    load_values,
    merge_values,
    one,
    render_bento,
    validate_strictly,
)
from helpers.gitops import (
    PROJECT,
    bare_repo,
    cli_env,
    commit_count,
    digest,
    env_name,
    files,
    git,
    gitops,
    image,
    write_lineage,
)
from helpers.images import free_port, serve_read_only, skopeo_inspect, wait_ready
from helpers.project import MODEL_VENV, copy_project

TOKEN = "argocd-test-token"


class ArgoCD(ThreadingHTTPServer):
    """Argo CD's `GET /api/v1/applications/<name>`: the next of `states` (sync, health) per
    call, the last one repeated, at the revision `revision()` names (by default the tip of the
    GitOps repo's main, as once Argo CD has polled it); 401 without the Bearer token, 404 for
    another application or outside `namespace` (`?appNamespace=`)."""

    def __init__(
        self,
        application: str,
        states: list[tuple[str, str]],
        revision: Callable[[], str],
        namespace: str | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), ArgoHandler)
        self.application, self.states, self.calls = application, list(states), 0
        self.revision, self.namespace = revision, namespace

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class JsonHandler(BaseHTTPRequestHandler):
    def answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class ArgoHandler(JsonHandler):
    server: ArgoCD

    def do_GET(self) -> None:
        argo = self.server
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(401, {"error": "no session information", "code": 16})
        path, _, query = self.path.partition("?")
        namespace = urllib.parse.parse_qs(query).get("appNamespace", [None])[0]
        if path != f"/api/v1/applications/{argo.application}" or namespace != argo.namespace:
            return self.answer(404, {"error": "application not found", "code": 5})
        sync, health = argo.states[min(argo.calls, len(argo.states) - 1)]
        argo.calls += 1
        revision = argo.revision()
        status = {"sync": {"status": sync, "revision": revision}, "health": {"status": health}}
        if health == "Degraded":
            status["health"]["message"] = "Deployment exceeded its progress deadline"
        self.answer(200, {"metadata": {"name": argo.application}, "status": status})


def tip(repo: Path) -> Callable[[], str]:
    return lambda: git(repo, "rev-parse", "main").strip()


@contextmanager
def argocd(
    application: str,
    *states: tuple[str, str],
    revision: Callable[[], str],
    namespace: str | None = None,
) -> Iterator[ArgoCD]:
    with serving(ArgoCD(application, list(states), revision, namespace)) as server:
        yield server


def error_line(result: subprocess.CompletedProcess) -> str:
    """The failure, which must be one line on stderr."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def project(baked_project: Path, tmp_path: Path) -> Path:
    return copy_project(baked_project, tmp_path)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return bare_repo(tmp_path / "gitops.git")


def deploy(project: Path, repo: Path, **env: str) -> subprocess.CompletedProcess:
    return gitops(
        project, "deploy", "--repo", str(repo), "--branch=feat/x", "--image", image(), **env
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEPLOY_WAIT": "5m"}, "DEPLOY_WAIT='5m'"),
        ({"DEPLOY_WAIT": "-1"}, "DEPLOY_WAIT='-1'"),
        ({"DEPLOY_WAIT": "5", "DEPLOY_BASE_URL": "127.0.0.1:8080"}, "DEPLOY_BASE_URL="),
        ({"DEPLOY_WAIT": "5", "ARGOCD_SERVER": "https://argocd.example"}, "ARGOCD_TOKEN"),
        ({"DEPLOY_WAIT": "5", "ARGOCD_TOKEN": TOKEN}, "ARGOCD_SERVER"),
        ({"DEPLOY_WAIT": "5", "ARGOCD_SERVER": "ftp://argocd", "ARGOCD_TOKEN": TOKEN}, "ftp://"),
    ],
)
def test_bad_wait_settings_fail_before_anything_is_written(project, repo, env, named):
    line = error_line(deploy(project, repo, **env))
    assert line.startswith("error: ") and named in line, line
    assert files(repo) == set()


def test_a_local_gitops_repo_is_not_checked_unless_asked(project, repo):
    # No Argo CD reads a local path: the deploy says so rather than wait for nothing.
    result = deploy(project, repo)
    assert result.returncode == 0, result.stderr
    assert "verify:      not checked: the GitOps repo is a local path" in result.stdout
    assert "not checked: DEPLOY_WAIT=0" in deploy(project, repo, DEPLOY_WAIT="0").stdout


def test_no_ingress_needs_a_base_url(project, repo):
    (project / "deploy" / "values.yaml").write_text("ingress:\n  enabled: false\n")
    line = error_line(deploy(project, repo, DEPLOY_WAIT="5"))
    assert "no ingress" in line and "DEPLOY_BASE_URL" in line, line
    assert files(repo) == set()


@pytest.mark.parametrize(
    ("states", "token", "seen"),
    [
        ([("OutOfSync", "Missing")], TOKEN, "is OutOfSync and Missing"),
        (
            [("Synced", "Progressing"), ("Synced", "Degraded")],
            TOKEN,
            "is Synced and Degraded (Deployment exceeded its progress deadline)",
        ),
        ([("Synced", "Healthy")], "wrong-token", "HTTP 401"),
    ],
)
def test_argocd_not_synced_and_healthy_fails_with_what_it_saw(project, repo, states, token, seen):
    application = f"{PROJECT}-{env_name(project, 'feat/x')}"
    with argocd(application, *states, revision=tip(repo)) as server:
        start_time = time.monotonic()
        result = deploy(
            project, repo, DEPLOY_WAIT="3", ARGOCD_SERVER=server.url, ARGOCD_TOKEN=token
        )
        assert time.monotonic() - start_time >= 3
        assert server.calls >= 1 or token != TOKEN
    line = error_line(result)
    assert line.startswith("error: not verified after 3 s: ") and line.endswith(seen), line
    assert f"application {application}" in line and token not in line
    # The commit is in: the failure is about the cluster, not the GitOps repo.
    assert files(repo) == {f"envs/{PROJECT}/{env_name(project, 'feat/x')}/values.yaml"}


def test_argocd_must_have_synced_the_deploys_commit_or_a_later_one(project, repo, tmp_path):
    application = f"{PROJECT}-{env_name(project, 'feat/x')}"
    argo = {"DEPLOY_WAIT": "3", "ARGOCD_TOKEN": TOKEN}
    assert deploy(project, repo, DEPLOY_WAIT="0").returncode == 0
    before = tip(repo)()
    # Right after the push Argo CD still reports the commit before as Synced and Healthy.
    with argocd(application, ("Synced", "Healthy"), revision=lambda: before) as server:
        args = ["deploy", "--repo", str(repo), "--branch=feat/x", "--image", image(2)]
        stale = gitops(project, *args, ARGOCD_SERVER=server.url, **argo)
    deployed = tip(repo)()
    assert deployed != before
    line = error_line(stale)
    assert line.endswith(
        f"application {application} is at revision {before[:12]}, "
        f"not yet at the deploy's {deployed[:12]}"
    ), line

    def later() -> str:
        """Another environment's deploy lands after this one: Argo CD syncs the newer commit."""
        if tip(repo)() == deployed:
            other = tmp_path / "other"
            git(tmp_path, "clone", "--quiet", str(repo), str(other))
            (other / "later.txt").write_text("another deploy\n")
            git(other, "add", "later.txt")
            git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "later")
            git(other, "push", "--quiet", "origin", "HEAD:main")
        return tip(repo)()

    with argocd(application, ("Synced", "Healthy"), revision=later) as server:
        # Argo CD is past the deploy's commit, so the check goes on to the environment, where
        # nothing listens: the wait ends on that, not on the revision.
        nobody = f"http://127.0.0.1:{free_port()}"
        args = ["deploy", "--repo", str(repo), "--branch=feat/x", "--image", image(2)]
        newer = gitops(project, *args, ARGOCD_SERVER=server.url, DEPLOY_BASE_URL=nobody, **argo)
    assert tip(repo)() != deployed
    line = error_line(newer)
    assert f"{nobody}/metadata: no answer" in line and "revision" not in line, line


def test_argocd_applications_in_another_namespace(project, repo):
    application = f"{PROJECT}-{env_name(project, 'feat/x')}"
    states = [("Synced", "Degraded")]
    with argocd(application, *states, revision=tip(repo), namespace="models") as server:
        argo = {"DEPLOY_WAIT": "2", "ARGOCD_SERVER": server.url, "ARGOCD_TOKEN": TOKEN}
        outside = error_line(deploy(project, repo, **argo))
        inside = error_line(deploy(project, repo, **argo, ARGOCD_APP_NAMESPACE="models"))
    assert outside.endswith(f"application {application}: HTTP 404"), outside
    assert f"application {application} is Synced and Degraded (" in inside, inside


def metadata_server(answer: dict) -> ThreadingHTTPServer:
    """A Bento's `POST /metadata`, answering `answer`."""

    class Metadata(JsonHandler):
        def do_POST(self) -> None:
            self.answer(200, answer)

    return ThreadingHTTPServer(("127.0.0.1", 0), Metadata)


def test_rollback_waits_until_production_serves_the_model_it_went_back_to(project, repo):
    for n in (1, 2):
        write_lineage(
            project, {"accuracy": 0.9}, mlflow_run_id=f"{n:02d}" * 16, model_version=str(n)
        )
        args = ["deploy", "--repo", str(repo), "--branch=main", "--image", image(n)]
        assert gitops(project, *args, GATE_OVERRIDE="test").returncode == 0
    first = yaml.safe_load(git(repo, "show", f"main~1:envs/{PROJECT}/production/values.yaml"))
    rollback = ["rollback", "--repo", str(repo), "--reason", "p99 doubled"]
    commits = commit_count(repo)
    assert "DEPLOY_WAIT='soon'" in error_line(gitops(project, *rollback, DEPLOY_WAIT="soon"))
    assert commit_count(repo) == commits

    served = {"model_version": "1", "image": f"{first['image']['repository']}@{digest(1)}"}
    with serving(metadata_server(served)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = gitops(project, *rollback, DEPLOY_WAIT="10", DEPLOY_BASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert (
        f"verified:    http://{first['ingress']['host']}/ serves model version 1" in result.stdout
    )
    assert commit_count(repo) == commits + 1


# -- the real image ---------------------------------------------------------------------------


def wait_for_values(repo: Path, env: str, process: subprocess.Popen, timeout: float) -> dict:
    """The values file once the deploy has pushed it, as Argo CD's poll would find it."""
    path = f"main:envs/{PROJECT}/{env}/values.yaml"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if f"envs/{PROJECT}/{env}/values.yaml" in files(repo):
            return yaml.safe_load(git(repo, "show", path))
        time.sleep(0.5)
    pytest.fail(f"no values file pushed: {process.communicate(timeout=30)}")


def pod_env(values: dict, port: int) -> dict[str, str]:
    """The container env the chart renders from a values file; the port is a free one, and
    BENTOML_HOME under /tmp, the one writable path where the pod has its emptyDirs."""
    local = {"bento": {"port": port, "homeDir": "/tmp/bentoml"}}
    deployment = one(render_bento(merge_values(values, local)), "Deployment")
    validate_strictly(deployment)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_deploy_waits_until_the_real_image_serves_it(built_image, image_rootfs, tmp_path):
    built, _, record, _ = built_image
    project = copy_project(built, tmp_path)
    repo = bare_repo(tmp_path / "gitops.git")
    env = env_name(project, "feat/verified")
    application = f"{PROJECT}-{env}"
    port = free_port()
    toolkit = {
        "PYTHONPATH": f"{project / 'src'}:{project}",
        "DEPLOY_BASE_URL": f"http://127.0.0.1:{port}",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    args = ["deploy", "--repo", str(repo), "--branch=feat/verified", "--image", record["reference"]]
    python = str(MODEL_VENV / "bin" / "python")
    config = skopeo_inspect(record["reference"], "--config")["config"]
    log = tmp_path / "serve.log"

    # Argo CD first reports the sync under way, then Synced and Healthy.
    states = ("OutOfSync", "Progressing"), ("Synced", "Healthy")
    with argocd(application, *states, revision=tip(repo)) as server:
        argo = {"ARGOCD_SERVER": server.url, "ARGOCD_TOKEN": TOKEN}
        # The model venv's Python: the deploy moves the MLflow alias.
        process = subprocess.Popen(
            [python, "-m", "deploy.gitops", *args],
            cwd=project,
            env=cli_env(DEPLOY_WAIT="240", **toolkit, **argo),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        values = wait_for_values(repo, env, process, timeout=120)
        served_env = {**pod_env(values, port), "BENTOML_HOST": "127.0.0.1"}
        assert served_env["BENTO_IMAGE"] == f"{record['repository']}@{record['digest']}"
        with serve_read_only(image_rootfs, config, served_env, log) as proc:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err + out
            host = values["ingress"]["host"]
            assert f"verified:    http://{host}/ serves model version" in out, out
            assert server.calls >= 2

            # The values name another model version than the one served: one line, after the wait.
            wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=10, log=log, process=proc)
            wrong = gitops(
                project, *args, "--model-version", "999", python=python, DEPLOY_WAIT="3", **toolkit
            )
            line = error_line(wrong)
            served = values["lineage"]["modelVersion"]
            assert line == (
                f"error: not verified after 3 s: http://127.0.0.1:{port}/metadata serves model "
                f"version '{served}', deployed '999'"
            ), line

    # Nothing listening any more: the deploy fails once DEPLOY_WAIT has passed, naming the URL.
    started = time.monotonic()
    gone = gitops(project, *args, python=python, DEPLOY_WAIT="3", **toolkit)
    assert time.monotonic() - started >= 3
    line = error_line(gone)
    assert line.startswith(
        f"error: not verified after 3 s: http://127.0.0.1:{port}/metadata: no answer"
    ), line


# The metric names of a PromQL query: identifiers followed by `{` (label matchers).
QUERY_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def exposed(metrics_text: str) -> dict[str, list[str]]:
    """Metric sample name -> the label sets of its samples, from a /metrics page."""
    samples: dict[str, list[str]] = {}
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            samples.setdefault(name.split(" ")[0], []).append(rest.partition("}")[0])
    return samples


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_analysis_queries_name_metrics_the_real_service_exposes(
    built_image, image_rootfs, tmp_path
):
    """The canary's AnalysisTemplate asks Prometheus for series that the served Bento's own
    /metrics has, with the labels the queries select on (Prometheus adds `namespace`)."""
    _, _, record, _ = built_image
    port = free_port()
    values = merge_values(
        load_values(BENTO_CHART / "ci" / "canary-values.yaml"),
        {"image": {"repository": record["repository"], "digest": record["digest"]}},
    )
    objects = render_bento(
        merge_values(values, {"bento": {"port": port, "homeDir": "/tmp/bentoml"}})
    )
    for obj in objects:
        validate_strictly(obj)
    (container,) = one(objects, "Rollout")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = skopeo_inspect(record["reference"], "--config")["config"]
    log = tmp_path / "serve.log"
    with serve_read_only(image_rootfs, config, {**env, "BENTOML_HOST": "127.0.0.1"}, log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", timeout=180, log=log, process=proc)
        assert post(f"{base}/metadata", b"{}") == 200
        assert post(f"{base}/predict", b'{"no such feature": 1}') == 400
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            samples = exposed(response.read().decode())
    metrics = one(objects, "AnalysisTemplate")["spec"]["metrics"]
    assert {m["name"] for m in metrics} == {"error-rate", "p99-latency"}
    for metric in metrics:
        query = metric["provider"]["prometheus"]["query"]
        names = QUERY_METRIC.findall(query)
        assert names, query
        for name in names:
            assert name in samples, f"{metric['name']}: {name} not on /metrics"
            labels = " ".join(samples[name])
            assert "http_response_code=" in labels, (name, labels)
            if name.endswith("_bucket"):
                assert 'le="+Inf"' in labels, labels
    # The 400 above is counted by code: the error-rate query's matcher sees real codes.
    assert 'http_response_code="400"' in " ".join(samples["bentoml_service_request_total"])
