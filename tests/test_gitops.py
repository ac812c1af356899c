"""The generated repo's GitOps write-back (`python -m deploy.gitops`), run as a subprocess from a
baked project against local bare repositories with real git."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from helpers.charts import render_bento, validate_strictly
from helpers.gitops import (
    PROJECT,
    RETRIES,
    bare_repo,
    commit_count,
    digest,
    env_name,
    files,
    git,
    gitops,
    image,
    last_message,
    read_gate,
    read_values,
    start,
    values_path,
    write_image,
    write_lineage,
)
from helpers.project import MODEL_VENV, TEMPLATE

CHART = TEMPLATE / "charts" / "bento-service"
HOSTILE = [
    'it\'s "quoted"',
    "$(touch PWNED)",
    "feat/$(touch${IFS}PWNED)",
    "`touch PWNED`",
    "a;touch${IFS}PWNED;#",
    "{{ cookiecutter.project }}/{{ .Release.Name }}",
    "{% raw %}x{{'PWNED'}}",
    "ünïcödé/日本語/😀",
    "x" * 200,
    "--help",
    "production",
]


@pytest.fixture
def project(baked_project: Path, tmp_path: Path) -> Path:
    """A private copy of the baked project (tests write build/ and params.yaml into it)."""
    return Path(shutil.copytree(baked_project, tmp_path / PROJECT, symlinks=True))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return bare_repo(tmp_path / "gitops-remote.git")


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def deploy(project: Path, repo: Path, branch: str, *args: str, n: int = 1) -> str:
    # `--branch=VALUE`: a branch such as `--help` must not be taken for an option.
    return ok(
        gitops(
            project, "deploy", "--repo", str(repo), f"--branch={branch}", "--image", image(n), *args
        )
    )


def teardown(project: Path, repo: Path, branch: str) -> str:
    return ok(gitops(project, "teardown", "--repo", str(repo), f"--branch={branch}"))


def envs(repo: Path) -> set[str]:
    return {path.split("/")[2] for path in files(repo)}


# --- deploy ------------------------------------------------------------------------------------


def test_env_name_cli_matches_the_rule(project):
    assert env_name(project, "main") == "production"
    assert env_name(project, "fix-login") == "fix-login"
    feat = env_name(project, "feat/a")
    assert feat.startswith("feat-a-") and feat != env_name(project, "feat-a")


def test_deploy_writes_values_into_the_default_local_repo(project, tmp_path):
    """No --repo: `[tool.mlops].gitops-repo` (../gitops.git) is created as a bare repo."""
    write_lineage(project, {"accuracy": 0.9})
    out = ok(gitops(project, "deploy", "--branch", "feat/x", "--image", image(7)))
    repo = tmp_path / "gitops.git"
    env = env_name(project, "feat/x")
    assert files(repo) == {values_path(env)}
    values = read_values(repo, env)
    deployed_at = values["lineage"].pop("deployedAt")
    assert datetime.fromisoformat(deployed_at) > datetime.now(UTC) - timedelta(minutes=5)
    assert values == {
        "project": PROJECT,
        "environment": env,
        "image": {"repository": f"127.0.0.1:5000/{PROJECT}", "tag": "t7", "digest": digest(7)},
        "lineage": {
            "branch": "feat/x",
            "gitCommit": "3f2a1b4" + "0" * 33,
            "mlflowRunId": "0123456789abcdef0123456789abcdef",
            "modelName": PROJECT,
            "modelVersion": "3",
        },
        "ingress": {"enabled": True, "host": f"{PROJECT}-{env}.preview.localhost"},
    }
    message = last_message(repo)
    for needle in (PROJECT, '"feat/x"', "3f2a1b4", "0123456789abcdef0123456789abcdef"):
        assert needle in message
    for link in (
        f"http://{PROJECT}-{env}.preview.localhost/",
        "http://mlflow.example/#/experiments/1/runs/",
        f"127.0.0.1:5000/{PROJECT}:t7@{digest(7)}",
        values_path(env),
    ):
        assert link in out


def test_the_forge_default_branch_decides_production(project):
    """CI's own default branch wins over pyproject's, so pipeline rules and deploys agree."""
    assert (
        ok(gitops(project, "env-name", "trunk", CI_DEFAULT_BRANCH="trunk")).strip() == "production"
    )
    assert ok(gitops(project, "env-name", "main", DEFAULT_BRANCH="trunk")).strip() == "main"
    assert ok(gitops(project, "env-name", "main")).strip() == "production"  # pyproject's


def test_in_ci_the_embedded_default_repo_is_refused(project, tmp_path):
    """A runner's ../gitops.git would be a throwaway repo: deploys there would be green while no
    Argo CD ever sees them (and the production gate would find no baseline)."""
    write_lineage(project, {"accuracy": 0.9})
    result = gitops(project, "deploy", "--branch", "feat/x", "--image", image(1), CI="true")
    assert result.returncode == 1
    assert result.stderr.startswith("error: GITOPS_REPO is not set: in CI the embedded default")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "gitops.git").exists()
    teardown = gitops(project, "teardown", "--branch", "feat/x", CI="true")
    assert teardown.returncode == 1 and "GITOPS_REPO is not set" in teardown.stderr


def test_flags_win_and_artifacts_fill_in(project, repo):
    """Branch from DEPLOY_BRANCH, image from build/image.json, lineage flags over lineage.json."""
    write_lineage(project, {"accuracy": 0.9})
    write_image(project, 5, tag="abc")
    ok(
        gitops(
            project,
            "deploy",
            "--repo",
            str(repo),
            "--run-id",
            "ff" * 16,
            "--commit",
            "a" * 40,
            "--model-version",
            "9",
            DEPLOY_BRANCH="feature/env",
        )
    )
    values = read_values(repo, env_name(project, "feature/env"))
    assert values["image"] == {
        "repository": f"reg.example/{PROJECT}",
        "tag": "abc",
        "digest": digest(5),
    }
    assert values["lineage"]["branch"] == "feature/env"
    assert values["lineage"]["mlflowRunId"] == "ff" * 16
    assert values["lineage"]["gitCommit"] == "a" * 40
    assert values["lineage"]["modelVersion"] == "9"


def test_branch_from_git_head_and_bare_deploy(project, repo):
    """No flags, no artifacts but the image: the branch is the checkout's, the commit its HEAD."""
    git(project, "checkout", "-q", "-b", "feature/head")
    ok(gitops(project, "deploy", "--repo", str(repo), "--image", f"127.0.0.1:5000/{PROJECT}:t1"))
    values = read_values(repo, env_name(project, "feature/head"))
    assert values["lineage"]["branch"] == "feature/head"
    assert values["lineage"]["gitCommit"] == git(project, "rev-parse", "HEAD").strip()
    assert values["image"] == {"repository": f"127.0.0.1:5000/{PROJECT}", "tag": "t1"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "no image"),
        (("--image", "127.0.0.1:5000/x@sha256:123"), "not an image reference"),
        (("--image", "UPPER/Case:tag"), "chart schema"),
        (("--image", "127.0.0.1:5000/x"), "needs a tag or, better, a digest"),
    ],
)
def test_bad_deploy_fails_clearly_and_writes_nothing(project, repo, args, error):
    result = gitops(project, "deploy", "--repo", str(repo), "--branch", "feat/x", *args)
    assert result.returncode == 1
    assert error in result.stderr
    assert commit_count(repo) == 0


def test_deploy_refuses_an_image_of_another_run(project, repo):
    """`make train` after `make image`: the image serves the old model, the lineage names the new."""
    write_lineage(project, {"accuracy": 0.9})
    write_image(project, mlflow_run_id="ee" * 16)
    result = gitops(project, "deploy", "--repo", str(repo), "--branch", "feat/x")
    assert result.returncode == 1
    assert "ee" * 16 in result.stderr and "0123456789abcdef" * 2 in result.stderr
    assert "make bento image" in result.stderr
    assert commit_count(repo) == 0
    write_image(project, mlflow_run_id="0123456789abcdef" * 2)  # the same run: deploys
    ok(gitops(project, "deploy", "--repo", str(repo), "--branch", "feat/x"))


def test_deploy_twice_makes_one_commit(project, repo):
    deploy(project, repo, "feat/same")
    out = deploy(project, repo, "feat/same")
    assert "nothing to do" in out
    assert commit_count(repo) == 1
    deploy(project, repo, "feat/same", n=2)
    assert commit_count(repo) == 2
    assert read_values(repo, env_name(project, "feat/same"))["image"]["digest"] == digest(2)


# --- teardown ----------------------------------------------------------------------------------


def test_teardown_twice_and_other_envs_untouched(project, repo):
    deploy(project, repo, "feat/a")
    deploy(project, repo, "feat-a")
    teardown(project, repo, "feat/a")
    assert envs(repo) == {env_name(project, "feat-a")}
    commits = commit_count(repo)
    assert "nothing to do" in teardown(project, repo, "feat/a")
    assert commit_count(repo) == commits
    assert "nothing to do" in teardown(project, repo, "never-deployed")


def test_teardown_needs_only_the_gitops_repo_and_the_project_name(project, repo, tmp_path):
    """A stop job without a checkout: just the code (the toolkit and the model package it
    imports), no pyproject.toml, no git repository, no branch."""
    deploy(project, repo, "feat/deleted")
    lonely = tmp_path / "lonely"
    for code in ("deploy", "src"):
        shutil.copytree(project / code, lonely / code)
    result = gitops(
        lonely, "teardown", "--repo", str(repo), "--project", PROJECT, DEPLOY_BRANCH="feat/deleted"
    )
    ok(result)
    assert files(repo) == set()
    assert "teardown" in last_message(repo) and '"feat/deleted"' in last_message(repo)


def test_teardown_refuses_production(project, repo):
    write_lineage(project, {"accuracy": 0.9})
    deploy(project, repo, "main")
    result = gitops(project, "teardown", "--repo", str(repo), "--branch", "main")
    assert result.returncode == 1 and "production" in result.stderr
    assert envs(repo) == {"production"}


@pytest.mark.slow
def test_hostile_branch_names_are_data(project, repo, tmp_path):
    for branch in HOSTILE:
        env = env_name(project, branch)
        deploy(project, repo, branch)
        assert read_values(repo, env)["lineage"]["branch"] == branch
        assert f"{PROJECT}-{env}.preview.localhost" == read_values(repo, env)["ingress"]["host"]
    assert len(envs(repo)) == len(HOSTILE)
    assert "production" not in envs(repo)
    for branch in HOSTILE:  # through the environment, as CI passes it
        ok(gitops(project, "teardown", "--repo", str(repo), DEPLOY_BRANCH=branch))
    assert files(repo) == set()
    assert not list(tmp_path.rglob("*PWNED*")) and not list(Path.cwd().glob("*PWNED*"))


# --- concurrency -------------------------------------------------------------------------------


def run_all(project: Path, commands: list[tuple[str, ...]]) -> tuple[list[int], float]:
    """Start every command at once; the retries each needed, and the wall time."""
    began = time.monotonic()
    procs = [start(project, *cmd) for cmd in commands]
    retries = []
    for cmd, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (cmd, err)
        retries.append(int(RETRIES.search(out).group(1)))
    return retries, time.monotonic() - began


@pytest.mark.slow
def test_concurrent_deploys_and_teardowns_lose_nothing(project, repo):
    """The repo starts empty, so the first writers also race to create its branch."""
    first = [f"feat/first-{i}" for i in range(20)]
    second = [f"feat/second-{i}" for i in range(10)]
    r = str(repo)
    deploys = [
        ("deploy", "--repo", r, "--branch", b, "--image", image(i)) for i, b in enumerate(first)
    ]
    retries1, wall1 = run_all(project, deploys)
    assert envs(repo) == {env_name(project, b) for b in first}

    mixed = [("teardown", "--repo", r, "--branch", b) for b in first] + [
        ("deploy", "--repo", r, "--branch", b, "--image", image(i)) for i, b in enumerate(second)
    ]
    retries2, wall2 = run_all(project, mixed)
    assert files(repo) == {values_path(env_name(project, b)) for b in second}
    assert commit_count(repo) == 50  # every change landed exactly once
    print(
        f"\nconcurrency: 20 deploys: {sum(retries1)} retries (max {max(retries1)}), {wall1:.1f}s; "
        f"20 teardowns + 10 deploys: {sum(retries2)} retries (max {max(retries2)}), {wall2:.1f}s"
    )


# --- the chart ---------------------------------------------------------------------------------


def test_written_values_render_with_the_chart_and_validate(project, repo):
    assert (CHART / "Chart.yaml").is_file() and (CHART / "templates").is_dir(), (
        "charts/bento-service is missing: the values cannot be rendered"
    )
    helm = pytest.importorskip("helm_python")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    write_lineage(project, {"accuracy": 0.9})
    branch = "feat/{{ .Release.Name }}-$(touch PWNED)"
    deploy(project, repo, branch, n=3)
    env = env_name(project, branch)
    release = f"{PROJECT}-{env}"
    assert len(release) <= 53
    manifests = helm.Chart.load(str(CHART)).render(
        read_values(repo, env), name=release, namespace=release
    )
    objects = [
        doc
        for path, text in manifests.items()
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and doc.get("kind")
    ]
    version = kubernetes_validate.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    kinds = {obj["kind"]: obj for obj in objects}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"127.0.0.1:5000/{PROJECT}@{digest(3)}"
    annotations = kinds["Deployment"]["metadata"]["annotations"]
    assert annotations["gitops-ml.io/branch"] == branch
    assert kinds["Ingress"]["spec"]["rules"][0]["host"] == f"{release}.preview.localhost"


PRODUCTION_VALUES = """\
autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 6}
resources:
  requests: {cpu: "1", memory: 1Gi}
  limits: {cpu: "2", memory: 2Gi}
nodeSelector: {pool: models}
tolerations:
  - {key: dedicated, operator: Equal, value: models, effect: NoSchedule}
image: {repository: not-this}
"""
PREVIEW_VALUES = """\
resources:
  requests: {cpu: 100m, memory: 256Mi}
  limits: {cpu: 500m, memory: 512Mi}
podDisruptionBudget: {enabled: false}
"""


def test_production_and_previews_get_their_own_values_rendered_by_the_chart(project, repo):
    """deploy/values.yaml for both, values-production.yaml or values-preview.yaml over it, the
    generated keys over all: rendered with the real chart and validated, each kind differs."""
    deploy_dir = project / "deploy"
    (deploy_dir / "values.yaml").write_text("podLabels: {team: fraud}\nreplicaCount: 2\n")
    (deploy_dir / "values-production.yaml").write_text(PRODUCTION_VALUES)
    (deploy_dir / "values-preview.yaml").write_text(PREVIEW_VALUES)
    write_lineage(project, {"accuracy": 0.9})
    deploy(project, repo, "main", n=1)
    deploy(project, repo, "feat/small", n=2)
    objects = {}
    for env in ("production", env_name(project, "feat/small")):
        rendered = render_bento(read_values(repo, env))
        for obj in rendered:
            validate_strictly(obj)
        objects[env] = {obj["kind"]: obj for obj in rendered}
    production, preview = objects["production"], objects[env_name(project, "feat/small")]

    def pod(kinds: dict) -> dict:
        return kinds["Deployment"]["spec"]["template"]["spec"]

    assert production["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 6
    assert "HorizontalPodAutoscaler" not in preview
    assert preview["Deployment"]["spec"]["replicas"] == 2  # from values.yaml
    assert pod(production)["nodeSelector"] == {"pool": "models"}
    assert pod(production)["tolerations"][0]["key"] == "dedicated"
    assert "nodeSelector" not in pod(preview) or not pod(preview)["nodeSelector"]
    limits = {
        env: pod(kinds)["containers"][0]["resources"]["limits"] for env, kinds in objects.items()
    }
    assert limits["production"]["memory"] == "2Gi"
    assert limits[env_name(project, "feat/small")]["memory"] == "512Mi"
    assert "PodDisruptionBudget" in production and "PodDisruptionBudget" not in preview
    for kinds in (production, preview):  # values.yaml applies to both
        assert kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]["team"] == "fraud"
    # Generated keys win over every file.
    assert pod(production)["containers"][0]["image"] == f"127.0.0.1:5000/{PROJECT}@{digest(1)}"


# --- gc ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gc_removes_stale_and_expired_envs_but_never_production(project, repo):
    write_lineage(project, {"accuracy": 0.9})
    month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    deploy(project, repo, "keep")
    deploy(project, repo, "feat/gone")
    deploy(project, repo, "feat/old", "--deployed-at", month_ago)
    deploy(project, repo, "main", "--deployed-at", month_ago)
    before, commits = files(repo), commit_count(repo)
    gc = (
        "gc",
        "--repo",
        str(repo),
        "--live-branch",
        "keep",
        "--live-branch",
        "feat/old",
    )

    plan = ok(gitops(project, *gc, "--ttl", "7d", "--dry-run"))
    assert f"would remove {PROJECT}/{env_name(project, 'feat/gone')}: branch is gone" in plan
    assert f"would remove {PROJECT}/{env_name(project, 'feat/old')}: TTL passed" in plan
    assert "production" not in plan
    assert (files(repo), commit_count(repo)) == (before, commits)

    ok(gitops(project, *gc, GITOPS_TTL="7d"))  # the TTL as CI sets it
    assert envs(repo) == {"keep", "production"}
    assert f"envs/{PROJECT}/production/gate.json" in files(repo)
    assert commit_count(repo) == commits + 1
    assert "nothing to do" in ok(gitops(project, *gc, "--ttl", "7d"))
    assert commit_count(repo) == commits + 1


@pytest.mark.slow
def test_gc_reads_live_branches_from_the_model_repo_remote(project, repo, tmp_path):
    origin = bare_repo(tmp_path / "model-origin.git")
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main:main", "main:feature/alive")
    deploy(project, repo, "feature/alive")
    deploy(project, repo, "feature/deleted")
    ok(gitops(project, "gc", "--repo", str(repo)))  # lists `origin`'s heads
    assert envs(repo) == {env_name(project, "feature/alive")}

    empty = bare_repo(tmp_path / "empty.git")
    result = gitops(project, "gc", "--repo", str(repo), "--remote", str(empty))
    assert result.returncode == 1 and "no branches" in result.stderr
    assert envs(repo) == {env_name(project, "feature/alive")}


# --- the production gate -----------------------------------------------------------------------


def set_gate(project: Path, metric: str, higher_is_better: bool, max_regression: float) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    params["gate"] = {
        "metric": metric,
        "higher_is_better": higher_is_better,
        "max_regression": max_regression,
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_production_gate_blocks_a_worse_model(project, repo):
    set_gate(project, "accuracy", True, 0.01)
    write_lineage(project, {"accuracy": 0.9}, mlflow_run_id="a1" * 16, model_version="1")
    out = deploy(project, repo, "main")
    assert "no production model yet: PASS" in out
    assert read_gate(repo)["value"] == 0.9 and read_gate(repo)["modelVersion"] == "1"
    commits = commit_count(repo)

    # No trained model here to re-score production with: the recorded score stands in, and the
    # verdict says so.
    write_lineage(project, {"accuracy": 0.85}, mlflow_run_id="b2" * 16, model_version="2")
    result = gitops(project, "deploy", "--repo", str(repo), "--branch", "main", "--image", image(2))
    assert result.returncode == 1
    assert "production v1 not re-scored (no test split here" in result.stderr
    assert "its recorded accuracy is 0.9, this change scores 0.85" in result.stderr
    assert result.stderr.rstrip().endswith("FAIL")
    assert commit_count(repo) == commits
    assert read_values(repo, "production")["lineage"]["modelVersion"] == "1"

    write_lineage(project, {"accuracy": 0.895}, mlflow_run_id="c3" * 16, model_version="3")
    deploy(project, repo, "main", n=3)
    assert "this change scores 0.895: required >= 0.89" in last_message(repo)
    assert "PASS" in last_message(repo)
    assert read_gate(repo)["value"] == 0.895
    assert read_values(repo, "production")["lineage"]["modelVersion"] == "3"


@pytest.mark.slow
def test_production_gate_lower_is_better_and_previews_are_not_gated(project, repo):
    set_gate(project, "log_loss", False, 0.0)
    write_lineage(project, {"log_loss": 0.10})
    deploy(project, repo, "main")
    write_lineage(project, {"log_loss": 0.11})
    failed = gitops(project, "deploy", "--repo", str(repo), "--branch", "main", "--image", image(2))
    assert failed.returncode == 1 and "FAIL" in failed.stderr
    deploy(project, repo, "feat/worse", n=2)  # a preview may carry any model
    write_lineage(project, {"log_loss": 0.09})
    deploy(project, repo, "main", n=3)
    assert read_gate(repo)["value"] == 0.09


def test_production_deploy_refuses_a_gate_on_a_metric_the_task_has_no(project, repo):
    set_gate(project, "rmse", False, 0.0)  # a regression metric on a classifier
    write_lineage(project, {"accuracy": 0.9})
    failed = gitops(project, "deploy", "--repo", str(repo), "--branch", "main", "--image", image(1))
    assert failed.returncode == 1
    expected = "gate.metric: 'rmse' is not a classification metric (accuracy, f1_macro, log_loss"
    assert failed.stderr.strip().splitlines() == [f"error: params.yaml: {expected}, roc_auc)"]
    assert commit_count(repo) == 0


# --- credentials and the model registry ----------------------------------------------------------


def test_token_and_url_credentials_never_show(project, tmp_path):
    """An HTTPS GitOps repo: the token goes only into git's environment, never into output."""
    token = "glpat-s3cr3t-t0ken"
    for url in ("https://127.0.0.1:9/gitops.git", "https://bot:hunter2pw@127.0.0.1:9/gitops.git"):
        result = gitops(
            project,
            "deploy",
            "--repo",
            url,
            "--branch",
            "feat/x",
            "--image",
            image(),
            GITOPS_TOKEN=token,
            NO_PROXY="127.0.0.1",
            no_proxy="127.0.0.1",
        )
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "127.0.0.1:9" in output
        assert token not in output and "hunter2pw" not in output
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert not leaked


def test_model_registry_failures_are_warnings(project, repo):
    """With a tracking server that cannot be reached, deploy and teardown still succeed."""
    write_lineage(project, {"accuracy": 0.9})
    server = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # the first refusal is the answer
    }
    deployed = gitops(
        project, "deploy", "--repo", str(repo), "--branch", "feat/x", "--image", image(), **server
    )
    assert "warning: could not set MLflow alias" in ok(deployed) + deployed.stderr
    torn = gitops(project, "teardown", "--repo", str(repo), "--branch", "feat/x", **server)
    assert "warning: could not delete MLflow alias" in ok(torn) + torn.stderr
    assert files(repo) == set()


def registry(uri: str, code: str) -> str:
    """Run MLflow client code in the model venv (the dev venv has no mlflow); `c` is the client."""
    script = f"from mlflow import MlflowClient\nc = MlflowClient({uri!r}, {uri!r})\n{code}"
    result = subprocess.run(
        [str(MODEL_VENV / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.slow
def test_mlflow_alias_follows_the_environment(project, repo, mlflow_server_uri):
    """Deploy points the env's alias at the deployed version; teardown deletes it."""
    name = f"alias-test-{time.monotonic_ns()}"
    registry(mlflow_server_uri, f"c.create_registered_model({name!r})")
    registry(mlflow_server_uri, f"c.create_model_version({name!r}, source='s3://b/m')")
    write_lineage(project, {"accuracy": 0.9}, model_name=name, model_version="1")
    branch, python = "v1", str(MODEL_VENV / "bin" / "python")  # `v1` is a reserved alias
    alias = "env-" + env_name(project, branch)
    server = {"MLFLOW_TRACKING_URI": mlflow_server_uri, "NO_PROXY": "127.0.0.1"}
    args = ("--repo", str(repo), "--branch", branch)
    out = ok(gitops(project, "deploy", *args, "--image", image(), python=python, **server))
    assert f"MLflow alias {name}@{alias} -> version 1" in out
    aliases = f"print(sorted(c.get_registered_model({name!r}).aliases))"
    assert registry(mlflow_server_uri, aliases) == repr([alias])
    out = ok(gitops(project, "teardown", *args, python=python, **server))
    assert f"MLflow alias {name}@{alias} deleted" in out
    assert registry(mlflow_server_uri, aliases) == "[]"


# --- rollback ------------------------------------------------------------------------------------


def production_deploys(project: Path, repo: Path, scores: list[float]) -> None:
    """Production deploys of model versions 1, 2, ... with these accuracies, each passing."""
    set_gate(project, "accuracy", True, 1.0)
    for n, accuracy in enumerate(scores, start=1):
        run_id = f"{n:02d}" * 16
        write_lineage(project, {"accuracy": accuracy}, mlflow_run_id=run_id, model_version=str(n))
        deploy(project, repo, "main", n=n)


def rollback(project: Path, repo: Path, *args: str, **env: str):
    return gitops(project, "rollback", "--repo", str(repo), *args, **env)


def test_rollback_returns_production_values_and_gate_record(project, repo):
    production_deploys(project, repo, [0.9, 0.95])
    first_gate = git(repo, "show", f"main~1:envs/{PROJECT}/production/gate.json")
    out = ok(rollback(project, repo, GITLAB_USER_LOGIN="alice", ROLLBACK_REASON="p99 doubled"))
    assert "production:  model version 1" in out
    values = read_values(repo, "production")
    assert values["image"]["digest"] == digest(1) and values["lineage"]["modelVersion"] == "1"
    assert git(repo, "show", f"main:envs/{PROJECT}/production/gate.json") == first_gate
    message = last_message(repo)
    assert message.startswith(f"rollback {PROJECT}/production to model version 1")
    for line in ('reason: "p99 doubled"', 'requested by: "alice"', "gate: bypassed (rollback)"):
        assert line in message
    # A second rollback walks further back: there is nothing before version 1.
    again = rollback(project, repo, "--reason", "again")
    assert again.returncode == 1 and "no production deploy" in again.stderr
    # A normal deploy after a rollback is judged against the rolled-back model's record.
    write_lineage(project, {"accuracy": 0.92}, mlflow_run_id="03" * 16, model_version="3")
    deploy(project, repo, "main", n=3)
    assert "its recorded accuracy is 0.9, this change scores 0.92" in last_message(repo)


def test_rollback_to_a_named_version(project, repo):
    production_deploys(project, repo, [0.9, 0.91, 0.92])
    ok(rollback(project, repo, "--reason", "audit", "--to-version", "1"))
    assert read_values(repo, "production")["lineage"]["modelVersion"] == "1"


@pytest.mark.parametrize(
    ("deploys", "args", "error"),
    [
        ([0.9, 0.95], (), "rollback needs a reason"),
        ([], ("--reason", "x"), "was never deployed to production"),
        ([0.9], ("--reason", "x"), "no production deploy of"),
        (
            [0.9, 0.95],
            ("--reason", "x", "--to-version", "7"),
            "never deployed to production (deployed: 2, 1)",
        ),
        ([0.9, 0.95], ("--reason", "x", "--to-version", "2"), "is in production already"),
    ],
    ids=["no-reason", "never-deployed", "one-deploy", "unknown-version", "current-version"],
)
def test_bad_rollbacks_fail_with_one_line_and_write_nothing(project, repo, deploys, args, error):
    production_deploys(project, repo, deploys)
    commits = commit_count(repo)
    result = rollback(project, repo, *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert error in result.stderr
    assert commit_count(repo) == commits


def test_a_corrupt_gate_record_is_refused(project, repo, tmp_path):
    production_deploys(project, repo, [0.9])
    checkout = tmp_path / "edit"
    git(tmp_path, "clone", "--quiet", str(repo), str(checkout))
    (checkout / "envs" / PROJECT / "production" / "gate.json").write_text('{"value": "high"}')
    git(checkout, "commit", "--quiet", "-am", "hand edit")
    git(checkout, "push", "--quiet", "origin", "HEAD:main")
    write_lineage(project, {"accuracy": 0.95}, mlflow_run_id="02" * 16, model_version="2")
    result = gitops(project, "deploy", "--repo", str(repo), "--branch", "main", "--image", image(2))
    assert result.returncode == 1
    assert f"envs/{PROJECT}/production/gate.json is not a record a deploy wrote" in result.stderr
