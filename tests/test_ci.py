"""The CI files: generated (.gitlab-ci.yml, .github/workflows) for every ci_provider and the
template's own; the merge request report; the generated GitLab pipeline run end to end with
gitlab-ci-local; template updates with cruft."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter
from helpers.github_expressions import gh_eval, gh_render, gh_truthy, glob_regex
from helpers.github_runner import Event, HostedRunner, Repository, hosted_runner
from helpers.gitlab import gitlab_ci_local, job_variables, pipeline_env
from helpers.gitlab_runner import GitLabLoader, extended, gitlab_runner
from helpers.gitops import bare_repo
from helpers.images import base_image_env, local_registry, skopeo_inspect
from helpers.lint import actionlint_errors, describe, schema_errors, tool, zizmor_findings
from helpers.project import CACHE, MODEL_VENV, TEMPLATE, bake, copy_project, run, setup_project

PROVIDERS = ("gitlab", "github", "both")
WORKFLOWS = {"ci.yml", "teardown.yml", "gc.yml", "rollback.yml"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Callable[[str], Path]:
    """The project baked for a ci_provider, once per provider."""
    projects: dict[str, Path] = {}

    def project(provider: str) -> Path:
        if provider not in projects:
            directory = tmp_path_factory.mktemp(f"ci-{provider}")
            projects[provider] = bake(directory, ci_provider=provider)
        return projects[provider]

    return project


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ci_files_follow_the_provider(generated, provider):
    project = generated(provider)
    workflows = {p.name for p in (project / ".github" / "workflows").glob("*")}
    assert (project / ".gitlab-ci.yml").is_file() == (provider != "github")
    assert workflows == (set() if provider == "gitlab" else WORKFLOWS)
    if provider == "gitlab":
        assert not (project / ".github").exists()


@pytest.mark.parametrize("provider", ("gitlab", "both"))
def test_generated_gitlab_ci_is_valid(generated, provider):
    project = generated(provider)
    pipeline = yaml.load((project / ".gitlab-ci.yml").read_text(), Loader=GitLabLoader)
    assert pipeline["stages"] == ["test", "train", "reproduce", "build", "deploy", "stop"]
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    # Every job is one `make` call over the shared hidden base job.
    for name, job in jobs.items():
        assert job.get("extends") == ".base", name
        script = job["script"]
        if name == "review-refused":  # says why there is no preview, and fails; no branch name
            assert "exit 1" in script and "$" not in script, script
            continue
        assert isinstance(script, str) and script.startswith("make "), (name, script)
    assert pipeline["review"]["environment"]["on_stop"] == "stop-review"
    assert pipeline["stop-review"]["environment"]["action"] == "stop"
    assert "{{" not in (project / ".gitlab-ci.yml").read_text()
    assert schema_errors([project / ".gitlab-ci.yml"], "vendor.gitlab-ci", project) == ""


@pytest.mark.parametrize("provider", ("github", "both"))
def test_generated_github_workflows_are_valid_and_clean(generated, provider):
    project = generated(provider)
    files = sorted((project / ".github" / "workflows").glob("*.yml"))
    for path in files:
        text = path.read_text()
        assert "${{" in text, f"{path.name}: the GitHub expressions were rendered away"
        assert "{% raw" not in text and "{{ cookiecutter" not in text
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}, path.name
        assert "pull_request_target" not in workflow[True], path.name  # `on:` parses as True
        for job in workflow["jobs"].values():
            assert "permissions" in job, path.name
            for step in job["steps"]:
                if "run" in step:
                    # Untrusted context reaches shells only through env:
                    assert "${{" not in step["run"], (path.name, step)
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert "persist-credentials" in step.get("with", {}), path.name
                if "uses" in step:
                    ref = step["uses"].split("@", 1)[1]
                    assert len(ref) == 40 and int(ref, 16) >= 0, step["uses"]
    assert schema_errors(files, "vendor.github-workflows", project) == ""
    assert actionlint_errors(project) == ""
    findings = zizmor_findings(project)
    assert findings == [], describe(findings)


def test_the_github_note_job_keeps_the_files_its_comment_names(generated):
    """GitHub has no upload API for comments: the comment names the artifact the job uploads."""
    project = generated("github")
    steps = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"]["note"]
    upload = next(s for s in steps["steps"] if s.get("uses", "").startswith("actions/upload-art"))
    forge = (project / "deploy" / "forge.py").read_text()
    assert f'REPORT_ARTIFACT = "{upload["with"]["name"]}"' in forge
    assert upload["with"]["path"].split() == [
        "build/report.md",
        "build/report/",
        "build/model_card.md",
    ]


def test_template_ci_files_are_valid():
    assert schema_errors([TEMPLATE / ".gitlab-ci.yml"], "vendor.gitlab-ci", TEMPLATE) == ""
    workflows = sorted((TEMPLATE / ".github" / "workflows").glob("*.yml"))
    assert workflows, "the template has no GitHub workflow"
    assert schema_errors(workflows, "vendor.github-workflows", TEMPLATE) == ""
    assert actionlint_errors(TEMPLATE) == ""
    findings = zizmor_findings(TEMPLATE)
    assert findings == [], describe(findings)
    for path in workflows:
        assert yaml.safe_load(path.read_text())["permissions"] == {}


# --- the merge request report ----------------------------------------------------------------


def git(project: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *args], project, env).stdout


@pytest.mark.slow
def test_make_report_from_a_trained_project(trained_project, model_env, tmp_path):
    project = copy_project(trained_project, tmp_path)
    git(project, model_env, "add", "--all")
    git(project, model_env, "commit", "--quiet", "--allow-empty", "-m", "trained")
    git(project, model_env, "checkout", "--quiet", "-b", "feat/smaller-C")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.05"))
    run(["make", "train"], project, model_env)
    (project / "build" / "image.json").write_text(
        '{"repository": "127.0.0.1:5000/x", "tag": "abc", "digest": "sha256:' + "0" * 64 + '"}'
    )
    (project / "build" / "reproduce.json").write_text(
        '{"commit": "c", "tolerance": 0.0, "strict": true, "verdict": "pass", "failures": [],'
        ' "max_abs_diff": 0.0}'
    )
    out = run(["make", "report"], project, model_env).stdout
    body = (project / "build" / "report.md").read_text()
    assert body.startswith("<!-- model-report -->")
    for section in ("### Metrics", "### Params", "### Reproducibility", "### Links"):
        assert section in body
    assert "| `accuracy` |" in body
    assert "| `train.hyperparameters.C` | 1 | 0.05 |" in body
    assert "✅ **PASS**" in body
    assert "127.0.0.1:5000/x:abc@sha256:" in body
    assert "run " in body and "Preview: http://" in body
    assert "feat/smaller-C" not in body  # branch names never enter the note
    dotenv = dict(
        line.split("=", 1) for line in (project / "build" / "deploy.env").read_text().splitlines()
    )
    assert dotenv["PREVIEW_URL"].startswith("http://") and dotenv["PREVIEW_URL"] in out
    assert "not posted" not in out  # no --post: nothing attempted


# --- the generated GitLab pipeline, end to end with gitlab-ci-local ---------------------------

EVIL_BRANCH = "feat/$(touch${IFS}PWNED)\"';{{x}}"  # git refuses spaces, so ${IFS} stands in
FULL_PIPELINE = ("test", "template", "train", "reproduce", "build", "review")


def gitlab_project(tmp_path: Path, env: dict[str, str], branch: str) -> tuple[Path, Path]:
    """A generated GitLab project on `branch`, and an empty bare GitOps repo next to it."""
    project = bake(tmp_path, ci_provider="gitlab")
    gitops = bare_repo(tmp_path / "gitops.git")
    if branch != "main":
        run(["git", "checkout", "--quiet", "-b", branch], project, env)
    return project, gitops


def values_files(gitops: Path, env: dict[str, str]) -> list[str]:
    listed = run(["git", "ls-tree", "-r", "--name-only", "HEAD"], gitops, env, check=False)
    return sorted(line for line in listed.stdout.splitlines() if line.endswith("values.yaml"))


def env_of(project: Path, env: dict[str, str], branch: str) -> str:
    return run(
        [str(MODEL_VENV / "bin" / "python"), "-m", "deploy.gitops", "env-name", branch],
        project,
        {**env, "PYTHONPATH": f"{project / 'src'}:{project}"},
    ).stdout.strip()


def report_timings(name: str, pipeline) -> None:
    print(
        f"\n{name}: {pipeline.seconds} s; "
        + ", ".join(f"{j} {t}" for j, t in pipeline.timings.items())
    )


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The local registry (host:port) and the base image settings, shared by the e2e tests."""
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry, base_image_env(registry)


def test_schedule_runs_gc_only(tmp_path, model_env):
    project, _ = gitlab_project(tmp_path, model_env, "main")
    env = pipeline_env(model_env)
    variables = {"CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "schedule"}
    assert listed_jobs(project, variables, env) == ["gc"]
    # A schedule with RETRAIN=true retrains through the default branch's pipeline, gated; gc stays.
    retrain = {**variables, "RETRAIN": "true"}
    assert listed_jobs(project, retrain, env) == [
        "test",
        "template",
        "train",
        "reproduce",
        "build",
        "production",
        "gc",
    ]
    on_main = listed_jobs(project, {"CI_DEFAULT_BRANCH": "main"}, env)
    assert on_main == ["test", "template", "train", "reproduce", "build", "production", "rollback"]
    run(["git", "checkout", "--quiet", "-b", "feat/x"], project, model_env)
    on_branch = listed_jobs(project, {"CI_DEFAULT_BRANCH": "main"}, env)
    assert on_branch == ["test", "template", "train", "reproduce", "build", "review", "stop-review"]
    merge_request = {
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_PROJECT_ID": "1",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "1",
        "CI_MERGE_REQUEST_IID": "5",
    }
    assert listed_jobs(project, merge_request, env) == [
        "test",
        "template",
        "train",
        "reproduce",
        "build",
        "review",
        "mr-note",
        "stop-review",
    ]
    # A fork's merge request tests and trains, but never deploys or posts with our tokens.
    from_fork = {**merge_request, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99"}
    assert listed_jobs(project, from_fork, env) == ["test", "template", "train", "reproduce"]


def listed_jobs(project: Path, variables: dict[str, str], env: dict[str, str]) -> list[str]:
    """The jobs `gitlab-ci-local --list` would run (it evaluates workflow and job rules)."""
    listed = gitlab_ci_local(project, variables, env, "--list")
    assert listed.returncode == 0, listed.tail()
    lines = listed.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name "))
    return [line.split()[0] for line in lines[header + 1 :] if line.strip()]


@pytest.mark.slow
@pytest.mark.xdist_group("gitlab-ci-local")
def test_gitlab_pipeline_feature_branch_end_to_end(tmp_path, model_env, stand_ins):
    registry, base = stand_ins
    branch = "feat/e2e"
    project, gitops = gitlab_project(tmp_path, model_env, branch)
    env = pipeline_env(model_env)
    variables = job_variables(gitops, registry, project.name, base)
    setup_project(project, model_env)  # the shared venv exists before jobs race to sync it

    pipeline = gitlab_ci_local(project, variables, env)
    report_timings("feature branch (cold)", pipeline)
    for job in FULL_PIPELINE:
        assert pipeline.results.get(job) == "PASS", (
            f"{job}: {pipeline.results}\n{pipeline.tail(job)}"
        )
    assert pipeline.returncode == 0, pipeline.tail()
    # The deploy job prints the links.
    review_log = pipeline.tail("review")
    for label in ("preview:", "mlflow run:", "image:", "values:"):
        assert label in review_log, review_log

    # The build job's artifact (gitlab-ci-local keeps artifacts under its state dir).
    image = json.loads(next((project / ".gitlab-ci-local").rglob("build/image.json")).read_text())
    assert image["repository"] == f"{registry}/{project.name}"
    assert skopeo_inspect(f"{image['repository']}@{image['digest']}")["Digest"] == image["digest"]

    env_name = env_of(project, model_env, branch)
    assert values_files(gitops, model_env) == [f"envs/{project.name}/{env_name}/values.yaml"]

    warm = gitlab_ci_local(project, variables, env)
    report_timings("feature branch (warm)", warm)
    assert warm.returncode == 0, warm.tail()
    assert "not rebuilt" in warm.tail("build"), warm.tail("build")  # same commit, same model

    stop = gitlab_ci_local(project, variables, env, "stop-review")
    assert stop.results.get("stop-review") == "PASS", stop.tail()
    assert values_files(gitops, model_env) == []


@pytest.mark.slow
@pytest.mark.xdist_group("gitlab-ci-local")
def test_gitlab_pipeline_default_branch_reaches_production_behind_the_gate(
    tmp_path, model_env, stand_ins, mlflow_server_uri
):
    """Promotion as a team runs it (an MLflow server holds the registry between pipelines):
    a first model, a worse one refused on the same rows with nothing moved, an equal one
    promoted with both scores, a manual rollback, and a promotion after it."""
    registry, base = stand_ins
    project, gitops = gitlab_project(tmp_path, model_env, "main")
    env = pipeline_env(model_env)
    variables = {
        **job_variables(gitops, registry, project.name, base),
        "MLFLOW_TRACKING_URI": mlflow_server_uri,
    }
    setup_project(project, model_env)
    production_jobs = ("train", "reproduce", "build", "production")

    pipeline = gitlab_ci_local(project, variables, env)
    report_timings("default branch", pipeline)
    expected = ("test", "template", "train", "reproduce", "build", "production")
    for job in expected:
        assert pipeline.results.get(job) == "PASS", (
            f"{job}: {pipeline.results}\n{pipeline.tail(job)}"
        )
    assert "review" not in pipeline.results and "rollback" not in pipeline.results  # manual
    assert "no production model yet: PASS" in pipeline.tail("production")
    production = f"envs/{project.name}/production/values.yaml"
    assert values_files(gitops, model_env) == [production]
    first = production_version(gitops, project, model_env)
    assert production_alias(mlflow_server_uri, project, model_env) == first
    before = run(["git", "rev-parse", "HEAD"], gitops, model_env).stdout

    # A much worse model on the default branch: refused on the same rows, nothing moves.
    set_c(project, model_env, "0.00001")
    worse = gitlab_ci_local(project, variables, env, *production_jobs)
    assert worse.results.get("train") == "PASS", worse.tail("train")
    assert worse.results.get("production") == "FAIL", worse.tail("production")
    assert f"production v{first} scores 0.9" in worse.tail("production")
    assert "on the same 114 rows" in worse.tail("production")
    assert run(["git", "rev-parse", "HEAD"], gitops, model_env).stdout == before
    assert production_alias(mlflow_server_uri, project, model_env) == first

    # A model as good as production's: promoted, both scores in the log.
    set_c(project, model_env, "1.0")
    equal = gitlab_ci_local(project, variables, env, *production_jobs)
    assert equal.results.get("production") == "PASS", equal.tail("production")
    assert f"production v{first} scores" in equal.tail("production")
    second = production_version(gitops, project, model_env)
    assert second != first and production_alias(mlflow_server_uri, project, model_env) == second

    # The manual rollback job: production, its record and the alias are the first model's again.
    back = gitlab_ci_local(
        project, {**variables, "ROLLBACK_REASON": "p99 doubled"}, env, "rollback"
    )
    assert back.results.get("rollback") == "PASS", back.tail("rollback")
    assert production_version(gitops, project, model_env) == first
    assert production_alias(mlflow_server_uri, project, model_env) == first
    assert (
        'reason: "p99 doubled"'
        in run(["git", "log", "-1", "--format=%B"], gitops, model_env).stdout
    )

    # And the pipeline promotes again after a rollback, judged against the first model.
    set_c(project, model_env, "1.00")
    later = gitlab_ci_local(project, variables, env, *production_jobs)
    assert later.results.get("production") == "PASS", later.tail("production")
    assert f"production v{first} scores" in later.tail("production")
    third = production_version(gitops, project, model_env)

    # A schedule with RETRAIN=true: the default branch's whole pipeline runs again, and gc with it;
    # nothing manual or per-branch. The data source is not an import, so the commit names the
    # latest data: the retraining gives the same model, and production is left as it is.
    schedule = {**variables, "CI_PIPELINE_SOURCE": "schedule", "RETRAIN": "true"}
    retrained = gitlab_ci_local(project, schedule, env)
    report_timings("scheduled retraining", retrained)
    for job in (*expected, "gc"):
        assert retrained.results.get(job) == "PASS", (
            f"{job}: {retrained.results}\n{retrained.tail(job)}"
        )
    assert set(retrained.results) == {*expected, "gc"}, retrained.results
    assert "retrain: no imported data source to update" in retrained.tail("train")
    assert "deploy breast-cancer-classifier/production: nothing to do" in retrained.tail(
        "production"
    )
    assert production_version(gitops, project, model_env) == third
    assert production_alias(mlflow_server_uri, project, model_env) == third


def set_c(project: Path, env: dict[str, str], value: str) -> None:
    params = project / "params.yaml"
    lines = [
        f"    C: {value}" if line.strip().startswith("C:") else line
        for line in params.read_text().splitlines()
    ]
    params.write_text("\n".join(lines) + "\n")
    run(["git", "commit", "--quiet", "-am", f"C: {value}"], project, env)


def production_version(gitops: Path, project: Path, env: dict[str, str]) -> str:
    path = f"HEAD:envs/{project.name}/production/values.yaml"
    return yaml.safe_load(run(["git", "show", path], gitops, env).stdout)["lineage"]["modelVersion"]


def production_alias(tracking_uri: str, project: Path, env: dict[str, str]) -> str:
    code = (
        "import mlflow, sys\n"
        f"client = mlflow.MlflowClient({tracking_uri!r})\n"
        f"print(client.get_registered_model({project.name!r}).aliases['production'])\n"
    )
    return run([str(MODEL_VENV / "bin" / "python"), "-c", code], project, env).stdout.strip()


@pytest.mark.slow
@pytest.mark.xdist_group("gitlab-ci-local")
def test_branch_names_are_data_in_the_pipeline(tmp_path, model_env):
    project, gitops = gitlab_project(tmp_path, model_env, EVIL_BRANCH)
    env = pipeline_env(model_env)
    variables = {
        "CI_DEFAULT_BRANCH": "main",
        "UV_PROJECT_ENVIRONMENT": str(MODEL_VENV),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv")),
        "GITOPS_REPO": str(gitops),
    }
    setup_project(project, model_env)
    before = {p for p in Path("/tmp").iterdir()}
    # GitLab cannot take this name into an environment name (review/<full branch name>), so the
    # pipeline has review-refused instead of review and stop-review: it fails and says why,
    # without the branch name. (The deploy tool's handling of such names, passed through the
    # environment as CI does, is tested in test_gitops.py.)
    assert "review" not in listed_jobs(project, {"CI_DEFAULT_BRANCH": "main"}, env)
    refused = gitlab_ci_local(project, variables, env, "test", "review-refused")
    assert refused.results == {"test": "PASS", "review-refused": "FAIL"}, refused.tail()
    assert "no preview for this branch" in refused.tail("review-refused"), refused.tail()
    assert values_files(gitops, model_env) == []

    # Where a job's shell would write: its checkout and build dirs (all below these two), and the
    # working directories around it. (Not a recursive walk of this repo: other tests write in
    # its caches meanwhile.)
    leaked = [p for place in (project, tmp_path) for p in place.rglob("PWNED")]
    leaked += [p for p in (Path.cwd() / "PWNED", Path.home() / "PWNED") if p.exists()]
    leaked += [p for p in Path("/tmp").iterdir() if p.name == "PWNED" and p not in before]
    assert leaked == [], leaked


# --- template updates with cruft ---------------------------------------------------------------

TEMPLATE_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".cache",
    "demo",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    ".gitlab-ci-local",
)


@pytest.fixture
def template_repo(tmp_path, model_env) -> Path:
    """A copy of the template as its own git repository (cruft clones templates with git)."""
    repo = tmp_path / "template"
    shutil.copytree(TEMPLATE, repo, ignore=TEMPLATE_COPY_IGNORE, symlinks=True)
    run(["git", "init", "--quiet", "-b", "main"], repo, model_env)
    run(["git", "add", "--all"], repo, model_env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "template v1"], repo, model_env)
    return repo


def cruft_state(project: Path) -> dict:
    return json.loads((project / ".cruft.json").read_text())


def test_generated_repo_records_its_template(tmp_path, template_repo, model_env):
    project = Path(
        cookiecutter(str(template_repo), no_input=True, output_dir=str(tmp_path / "out"))
    )
    state = cruft_state(project)
    assert state["template"] == str(template_repo)
    context = state["context"]["cookiecutter"]
    assert context["project"] == project.name and context["ci_provider"] == "gitlab"
    assert not {"_output_dir", "_repo_dir"} & context.keys()  # no paths of the baking machine
    head = run(["git", "rev-parse", "HEAD"], template_repo, model_env).stdout.strip()
    # The post-gen hook fills in the template commit (cookiecutter does not know it).
    assert state["commit"] == head, "hooks/post_gen_project.py must record the template commit"


def test_cruft_check_names_a_template_path_the_runner_cannot_reach(tmp_path, model_env):
    project = bake(tmp_path)
    state = cruft_state(project)
    (project / ".cruft.json").write_text(json.dumps({**state, "template": "/nowhere/template"}))
    result = run(["make", "cruft-check"], project, model_env)
    assert result.stdout.strip() == (
        "cruft-check: the template is the local path /nowhere/template, unreachable from here; "
        "record its git URL with 'cruft link <url>'"
    )


def test_cruft_update_brings_template_changes_and_keeps_user_code(
    tmp_path, template_repo, model_env
):
    cruft = tool("cruft")
    project = Path(
        cookiecutter(str(template_repo), no_input=True, output_dir=str(tmp_path / "out"))
    )
    state = cruft_state(project)
    # The user's own work, committed.
    package = project / "src" / state["context"]["cookiecutter"]["__package"]
    user_file = package / "features.py"
    user_file.write_text("FEATURES = ['mine']\n")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("test_size: 0.2", "test_size: 0.3"))
    run(["git", "add", "--all"], project, model_env)
    run(["git", "commit", "--quiet", "-m", "my model"], project, model_env)

    # The template moves on: a new Makefile target and a new doc.
    makefile = template_repo / "{{cookiecutter.project}}" / "Makefile"
    makefile.write_text(
        makefile.read_text() + "\n.PHONY: hello\nhello: ## From template v2\n\t@echo hello\n"
    )
    (template_repo / "{{cookiecutter.project}}" / "UPGRADING.md").write_text("# v2\n")
    run(["git", "add", "--all"], template_repo, model_env)
    run(["git", "commit", "--quiet", "-m", "template v2"], template_repo, model_env)
    v2 = run(["git", "rev-parse", "HEAD"], template_repo, model_env).stdout.strip()

    behind = run([cruft, "check"], project, model_env, check=False)
    assert behind.returncode != 0, behind.stdout
    run([cruft, "update", "--skip-apply-ask", "--allow-untracked-files"], project, model_env)

    assert "hello: ## From template v2" in (project / "Makefile").read_text()
    assert (project / "UPGRADING.md").read_text() == "# v2\n"
    assert user_file.read_text() == "FEATURES = ['mine']\n"
    assert "test_size: 0.3" in params.read_text()
    assert cruft_state(project)["commit"] == v2
    assert run([cruft, "check"], project, model_env, check=False).returncode == 0


# --- runner semantics the linters do not check (issue 12, items 4-8) ---------------------------
#
# Each test below reads the generated pipeline and evaluates what the CI service does with it,
# following the service's documented behaviour (cited where it is used): GitHub's expressions and
# concurrency groups, GitLab's cache keys, artifacts, environment and resource_group names.

GITLAB_ENV_NAME = re.compile(  # GitLab's lib/gitlab/regex.rb, environment_name_regex (also
    r"^[a-zA-Z0-9_${}. -]([a-zA-Z0-9_/${}. -]*[a-zA-Z0-9_${}. -])?$"  # resource_group keys)
)
GITLAB_NAME_MAX = 255  # Environment#name and Ci::ResourceGroup#key


@pytest.fixture(scope="module")
def github_project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("gh-semantics"), ci_provider="github")


@pytest.fixture(scope="module")
def gitlab_pipeline(tmp_path_factory) -> tuple[Path, dict]:
    project = bake(tmp_path_factory.mktemp("gl-semantics"), ci_provider="gitlab")
    return project, yaml.load((project / ".gitlab-ci.yml").read_text(), Loader=GitLabLoader)


def workflow(project: Path, name: str) -> dict:
    return yaml.safe_load((project / ".github" / "workflows" / name).read_text())


# Pairs that slugging alone would merge (the generated tests/deploy/test_naming.py has more).
NEAR_COLLISIONS = [
    "feat/a",
    "feat-a",
    "feat_a",
    "feat.a",
    "Feat-a",
    "FEAT-A",
    "feature/" + "x" * 61,
]


def branches_git_accepts() -> list[str]:
    """The hostile names of the GitOps tests and near collisions, as far as git takes them."""
    from test_gitops import HOSTILE

    names = [*HOSTILE, *NEAR_COLLISIONS, "Feat", "feat", "fix#1", "renovate/numpy-2.x"]
    return [name for name in dict.fromkeys(names) if git_accepts(name)]


def git_accepts(branch: str) -> bool:
    check = ["git", "check-ref-format", "--branch", branch]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def test_the_expression_evaluator_follows_githubs_rules():
    ctx = {"vars": {"A": "x"}, "github": {"ref_name": "Main"}}
    assert gh_eval("vars.MISSING == ''", ctx) is True
    assert gh_eval("vars.MISSING || 'd'", ctx) == "d"
    assert gh_eval("vars.A && 'y' || 'z'", ctx) == "y"
    assert gh_eval("github.ref_name == 'main'", ctx) is True  # case-insensitive
    assert gh_eval("startsWith('GHCR.io/x', 'ghcr.io/')", ctx) is True
    assert gh_render("g-${{ format('{0}-{1}', 'a', github.ref_name) }}", ctx) == "g-a-Main"


def step_with(job: dict, needle: str) -> dict:
    """The step with this id, else the one step whose `run:` contains `needle`."""
    found = [s for s in job["steps"] if s.get("id") == needle] or [
        s for s in job["steps"] if needle in str(s.get("run", ""))
    ]
    assert len(found) == 1, (needle, [s.get("run") or s.get("uses") for s in job["steps"]])
    return found[0]


def run_step(step: dict, context: dict, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run a `run:` step the way the runner does (bash -e -o pipefail, step env rendered from
    the expression context, GITHUB_OUTPUT a file); returns the outputs it wrote."""
    output = cwd / ".github-output"
    output.write_text("")
    step_env = {k: gh_render(v, context) for k, v in (step.get("env") or {}).items()}
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        **(env or {}),
        **step_env,
        "GITHUB_OUTPUT": str(output),
    }
    script = cwd / ".github-step.sh"
    script.write_text(step["run"])
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


def venv_shim(project: Path) -> None:
    """`.venv/bin/python` of a project, running this test venv's Python (which has PyYAML)."""
    shim = project / ".venv" / "bin" / "python"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)


def deploy_tool_env(project: Path, branch: str) -> str:
    """The deploy tool's environment name of `branch` (the contract `env-name BRANCH`)."""
    result = subprocess.run(
        [sys.executable, "-m", "deploy.gitops", "env-name", "--", branch],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


# --- item 4: the image name and the registry credentials (GitHub) -----------------------------


@pytest.mark.parametrize(
    ("variables", "secrets", "repository", "user", "password"),
    [
        ({}, {}, "ghcr.io/octo-org/my_model.v2", "Octo-Cat", "ghs_token"),
        ({"IMAGE_REPOSITORY": "ghcr.io/other/x"}, {}, "ghcr.io/other/x", "Octo-Cat", "ghs_token"),
        ({"IMAGE_REPOSITORY": "registry.example.com/team/model"}, {}, None, "", ""),
        (
            {"IMAGE_REPOSITORY": "registry.example.com/team/model", "REGISTRY_USER": "robot"},
            {"REGISTRY_PASSWORD": "s3cret"},
            None,
            "robot",
            "s3cret",
        ),
    ],
)
def test_github_image_name_is_lower_case_and_the_token_stays_on_ghcr(
    github_project, tmp_path, variables, secrets, repository, user, password
):
    build = workflow(github_project, "ci.yml")["jobs"]["build"]
    context = {
        "github": {"repository": "Octo-Org/My_Model.V2", "actor": "Octo-Cat"},
        "vars": variables,
        "secrets": {"GITHUB_TOKEN": "ghs_token", **secrets},
    }
    image = step_with(build, "image")
    outputs = run_step(image, context, tmp_path, {"GITHUB_REPOSITORY": "Octo-Org/My_Model.V2"})
    expected = repository or variables["IMAGE_REPOSITORY"]
    assert outputs["repository"] == expected
    context["steps"] = {"image": {"outputs": outputs}}
    make = step_with(build, "make bento image")
    env = {**(build.get("env") or {}), **make["env"]}
    rendered = {key: gh_render(value, context) for key, value in env.items()}
    assert rendered["IMAGE_REPOSITORY"] == expected
    assert (rendered["REGISTRY_USER"], rendered["REGISTRY_PASSWORD"]) == (user, password)
    if not expected.startswith("ghcr.io/"):
        assert "ghs_token" not in rendered.values()  # the GitHub token never leaves GitHub


# --- item 5 and the one environment identity (GitHub) ------------------------------------------


def test_github_deploy_and_teardown_share_one_uncancellable_group_per_environment(
    github_project, tmp_path
):
    """For every branch, the deploy job (push) and the teardown (delete, pull request closed)
    queue in one concurrency group named after the deploy tool's environment: different for
    different environments even ignoring case (GitHub compares group names ignoring case), and
    `queue: max`, without which GitHub cancels a pending teardown when a deploy queues behind it
    (docs.github.com, "Control the concurrency of workflows and jobs")."""
    project = Path(shutil.copytree(github_project, tmp_path / github_project.name))
    venv_shim(project)
    ci, teardown = workflow(project, "ci.yml"), workflow(project, "teardown.yml")
    model, deploy, remover = ci["jobs"]["model"], ci["jobs"]["deploy"], teardown["jobs"]["teardown"]
    for job in (deploy, remover):
        assert job["concurrency"].get("queue") == "max", job["concurrency"]
        assert job["concurrency"]["cancel-in-progress"] is False
    namer = teardown["jobs"]["environment"]
    assert remover["needs"] in ("environment", ["environment"])
    groups: dict[str, str] = {}
    for branch in branches_git_accepts()[:30]:
        env = deploy_tool_env(project, branch)
        push = {"github": {"event_name": "push", "ref_name": branch, "head_ref": ""}}
        step = step_with(model, "environment")
        push["steps"] = {"environment": {"outputs": run_step(step, push, project)}}
        push["needs"] = {
            "model": {"outputs": {k: gh_render(v, push) for k, v in model["outputs"].items()}}
        }
        deploy_group = gh_render(deploy["concurrency"]["group"], push)

        teardown_groups = []
        for event in (
            {"event_name": "delete", "event": {"ref": branch, "ref_type": "branch"}},
            {"event_name": "pull_request", "head_ref": branch, "event": {}},
        ):
            ctx = {"github": event}
            job_env = {k: gh_render(v, ctx) for k, v in namer["env"].items()}
            assert job_env["DEPLOY_BRANCH"] == branch
            step = step_with(namer, "environment")
            ctx["steps"] = {"environment": {"outputs": run_step(step, ctx, project, job_env)}}
            ctx["needs"] = {
                "environment": {
                    "outputs": {k: gh_render(v, ctx) for k, v in namer["outputs"].items()}
                }
            }
            teardown_groups.append(gh_render(remover["concurrency"]["group"], ctx))
            assert gh_render(remover["env"]["DEPLOY_BRANCH"], ctx) == branch

        assert deploy_group == f"gitops-{env}", branch
        assert teardown_groups == [deploy_group, deploy_group], branch
        groups[branch] = deploy_group
    folded = {group.casefold() for group in groups.values()}
    assert len(folded) == len(groups), groups
    # The run-level group: per pull request (a newer commit cancels the older run), never shared
    # by two branches' push runs (a pending run would be cancelled by the other branch's push).
    run_level = ci["concurrency"]
    pushes = {
        gh_render(
            run_level["group"],
            {
                "github": {
                    "event_name": "push",
                    "ref": f"refs/heads/{b}",
                    "ref_name": b,
                    "run_id": str(i),
                }
            },
        ).casefold()
        for i, b in enumerate(["Feat", "feat", "FEAT"])
    }
    assert len(pushes) == 3, pushes
    pull = {"github": {"event_name": "pull_request", "ref": "refs/pull/7/merge", "run_id": "1"}}
    again = {"github": {**pull["github"], "run_id": "2"}}
    assert gh_render(run_level["group"], pull) == gh_render(run_level["group"], again)
    assert gh_render(run_level["cancel-in-progress"], pull) == "true"


@pytest.mark.parametrize(
    ("branch", "heads", "deploys"),
    [
        ("feat/a", ["feat/a"], True),
        ("feat/a", ["main", "feat/a", "other"], True),  # a new branch at another's head
        ("feat/a", [], False),  # deleted, or a newer commit was pushed
        ("feat/a", ["feat/a/b", "feat"], False),
        ("feat.a", ["featXa"], False),  # literal, not a pattern
        ("--help", ["--help"], True),
        ("-x", ["main"], False),
    ],
)
def test_github_deploy_writes_only_while_its_commit_is_the_branch_head(
    github_project, tmp_path, branch, heads, deploys
):
    """A run still in model/build when its branch is deleted reaches the deploy job after the
    teardown: inside the group it must find its commit no longer a branch head and write
    nothing. (The API: GET /repos/{owner}/{repo}/commits/{sha}/branches-where-head.)"""
    job = workflow(github_project, "ci.yml")["jobs"]["deploy"]
    check = step_with(job, "current")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(
        "#!/bin/sh\n"
        '[ "$GH_TOKEN" = "ghs_token" ] || exit 3\n'
        'case "$*" in *"repos/o/r/commits/abc123/branches-where-head"*) ;; *) exit 4;; esac\n'
        f"printf '%s\\n' {' '.join(shlex.quote(h) for h in heads)}\n"
    )
    (fake / "gh").chmod(0o755)
    ctx = {"github": {"ref_name": branch, "token": "ghs_token"}}
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_SHA": "abc123",
    }
    outputs = run_step(check, ctx, tmp_path, env)
    assert outputs["head"] == str(deploys).lower()
    guarded = [
        s for s in job["steps"] if "make deploy" in str(s.get("run")) or s.get("id") == "report"
    ]
    assert len(guarded) == 2
    for step in guarded:
        ctx["steps"] = {"current": {"outputs": outputs}}
        assert gh_truthy(gh_eval(step["if"], ctx)) == deploys, step


# --- item 6: caches that hit and update ---------------------------------------------------------


def test_github_dvc_cache_is_restored_before_setup_and_keyed_on_what_decides_it(github_project):
    """A cache key is written once, never updated (actions/cache): a key that does not change
    with the pipeline's inputs saves one cache and never another. dvc.lock is not committed, so
    hashFiles('dvc.lock') is constant."""
    model = workflow(github_project, "ci.yml")["jobs"]["model"]
    steps = model["steps"]
    cache = next(
        i for i, s in enumerate(steps) if str(s.get("with", {}).get("path")) == ".dvc/cache"
    )
    setup = next(i for i, s in enumerate(steps) if s.get("run") == "make setup")
    assert cache < setup, "restore the DVC cache before `make setup` pulls data into it"
    key = steps[cache]["with"]["key"]
    calls = re.findall(r"hashFiles\(([^)]*)\)", key)
    assert calls, key
    patterns = [p for call in calls for p in re.findall(r"'([^']*)'", call)]
    tracked = run(["git", "ls-files"], github_project, dict(os.environ)).stdout.split()
    hashed = {f for f in tracked if any(glob_regex(p).match(f) for p in patterns)}
    # What decides the cache's content: params, the pipeline, the data's .dvc files, the code.
    stages = yaml.safe_load((github_project / "dvc.yaml").read_text())["stages"]
    deps = {d for stage in stages.values() for d in stage.get("deps", []) if d in tracked}
    needed = {"params.yaml", "dvc.yaml", *deps, *(f for f in tracked if f.endswith(".dvc"))}
    assert needed <= hashed, f"not in the key: {sorted(needed - hashed)}"


def _gitlab_key(entry: dict, variables: dict[str, str], key=None) -> str:
    key = entry["key"] if key is None else key
    if isinstance(key, dict):  # key:files -> prefix-<hash of the files>
        return f"{key.get('prefix', '')}-<files>"
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], ""), str(key))


def _gitlab_caches(job: dict, base: dict, path: str) -> list[dict]:
    entries = job.get("cache", base.get("cache", []))
    entries = entries if isinstance(entries, list) else [entries]
    return [e for e in entries if path in e.get("paths", [])]


def test_gitlab_dvc_cache_hits_across_branches_of_one_protection(gitlab_pipeline):
    """GitLab appends -protected or -non_protected to cache keys, fallback keys included, when
    protected branches keep separate caches (the default; docs.gitlab.com, "Use a fallback cache
    key"). So a feature branch can only hit a key written on a non-protected branch: a fallback
    naming the default branch never matches."""
    _, pipeline = gitlab_pipeline
    base = pipeline[".base"]
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}

    def ref(name: str, protected: bool) -> dict[str, str]:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:63].strip("-")
        suffix = "-protected" if protected else "-non_protected"
        return {
            "CI_COMMIT_REF_SLUG": slug,
            "CI_COMMIT_REF_NAME": name,
            "CI_DEFAULT_BRANCH": "main",
            "suffix": suffix,
        }

    def written(variables) -> set[str]:
        return {
            _gitlab_key(e, variables) + variables["suffix"]
            for job in jobs.values()
            for e in _gitlab_caches(job, base, ".dvc/cache")
            if e.get("policy", "pull-push") in ("push", "pull-push")
        }

    def tried(job, variables) -> list[str]:
        return [
            _gitlab_key(e, variables, k) + variables["suffix"]
            for e in _gitlab_caches(job, base, ".dvc/cache")
            for k in [e["key"], *e.get("fallback_keys", [])]
        ]

    readers = [j for j in jobs.values() if _gitlab_caches(j, base, ".dvc/cache")]
    assert readers, "no job uses a DVC cache"
    for reader in readers:
        # A second feature branch after a first one; the default branch after itself.
        assert set(tried(reader, ref("feat/b", False))) & written(ref("feat/a", False))
        assert set(tried(reader, ref("main", True))) & written(ref("main", True))


# --- item 7: the artifacts carry every fact to the jobs after them (GitLab) -------------------


def _gitlab_sources(name: str, jobs: dict, stages: list[str]) -> list[str]:
    """The jobs whose artifacts `name` downloads: needs, else dependencies, else every job of
    the earlier stages (docs.gitlab.com, `needs:artifacts`, `dependencies`)."""
    job = jobs[name]
    if "needs" in job:
        needed = [n if isinstance(n, dict) else {"job": n} for n in job["needs"]]
        return [n["job"] for n in needed if n.get("artifacts", True)]
    if "dependencies" in job:
        return list(job["dependencies"])
    stage = stages.index(job["stage"])
    return [n for n, j in jobs.items() if stages.index(j["stage"]) < stage]


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def test_gitlab_artifacts_pass_on_the_tagged_mlflow_store_and_the_dvc_objects(gitlab_pipeline):
    _, pipeline = gitlab_pipeline
    stages = pipeline["stages"]
    jobs = {
        k: v
        for k, v in pipeline.items()
        if isinstance(v, dict) and "script" in v and k != "gc"  # gc: scheduled pipelines only
    }
    paths = {n: j.get("artifacts", {}).get("paths", []) for n, j in jobs.items()}
    # reproduce tags the MLflow run in its copy of the store: it must pass that copy on, with
    # the rest of train's model, and the DVC objects must travel as artifacts, not only in the
    # best-effort cache (a miss fails `make setup` and `make reproduce`).
    assert "mlflow.db" in paths["reproduce"]
    assert set(paths["train"]) <= set(paths["reproduce"])
    assert any(p.startswith(".dvc/cache") for p in paths["train"])
    # A scheduled retraining's `dvc update` moves an import's pointer: it travels with the model.
    assert "data/**/*.dvc" in paths["train"]
    for name, job in jobs.items():
        sources = _gitlab_sources(name, jobs, stages)
        for i, first in enumerate(sources):
            for second in sources[i + 1 :]:
                clash = [(a, b) for a in paths[first] for b in paths[second] if _overlap(a, b)]
                # GitLab does not document which copy wins: one path, one source.
                assert not clash, f"{name} gets {clash} from both {first} and {second}"
        after_reproduce = stages.index(job["stage"]) > stages.index("reproduce")
        gets_store = [s for s in sources if "mlflow.db" in paths[s]]
        if after_reproduce and gets_store:
            assert gets_store == ["reproduce"], (name, gets_store)
        runs_setup = job.get("before_script", pipeline[".base"]["before_script"])
        if after_reproduce and "make setup" in runs_setup:
            dvc = [s for s in sources if any(p.startswith(".dvc/cache") for p in paths[s])]
            assert dvc, f"{name}: `make setup` needs the DVC objects as artifacts"


# --- item 8: GitLab environments keyed on the full branch name --------------------------------


def _gitlab_expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], ""), str(text))


def _rule_regex(job: dict, negated: bool) -> re.Pattern:
    op = "!~" if negated else "=~"
    found = [
        m
        for rule in job["rules"]
        if "if" in rule
        for m in re.findall(op + r"\s*/(.*)/\s*$", rule["if"])
    ]
    assert len(found) == 1, job["rules"]
    return re.compile(found[0].replace(r"\/", "/"))


def test_gitlab_environment_and_resource_group_are_one_per_branch(gitlab_pipeline):
    """GitLab stops an environment through its last deployment, so two branches sharing one
    (review/$CI_COMMIT_REF_SLUG: `feat/a` and `feat-a`) stop each other's previews. Each branch
    gets review/<full name> as environment and resource_group in review and stop-review, valid
    for GitLab, or, when its name cannot be one, review-refused and no environment at all."""
    _, pipeline = gitlab_pipeline
    review, stop = pipeline["review"], pipeline["stop-review"]
    has_rule = any("=~" in rule.get("if", "") for rule in review["rules"])
    fits = _rule_regex(review, False) if has_rule else re.compile("")
    names: dict[str, str] = {}
    for branch in [*branches_git_accepts(), "x" * 248, "x" * 249, "a/" + "b" * 250]:
        if branch == "main":
            continue
        variables = {
            "CI_COMMIT_REF_NAME": branch,
            "CI_COMMIT_REF_SLUG": re.sub(r"[^a-z0-9]+", "-", branch.lower())[:63].strip("-"),
        }
        if not fits.search(branch):
            continue  # review-refused runs instead (rules evaluated by gitlab-ci-local below)
        name = _gitlab_expand(review["environment"]["name"], variables)
        for job in (review, stop):
            assert _gitlab_expand(job["environment"]["name"], variables) == name
            assert _gitlab_expand(job["resource_group"], variables) == name
        names[branch] = name
    assert {"feat/a", "feat-a", "Feat-a", "FEAT-A", "feat_a", "feat.a"} <= names.keys()
    shared = {n: [b for b in names if names[b] == n] for n in names.values()}
    assert len(shared) == len(names), {n: bs for n, bs in shared.items() if len(bs) > 1}
    for branch, name in names.items():
        assert GITLAB_ENV_NAME.match(name) and len(name) <= GITLAB_NAME_MAX, (branch, name)
        assert "$" not in branch  # an environment name with `$` in it could be expanded again
    # Exactly one of review (with stop-review) and review-refused, for every branch.
    refused = pipeline["review-refused"]
    assert fits.pattern == _rule_regex(refused, True).pattern == _rule_regex(stop, False).pattern


def test_gitlab_pipelines_list_one_environment_per_branch_and_satisfiable_needs(
    tmp_path, model_env
):
    """gitlab-ci-local evaluates the rules: colliding names get distinct environments, a name
    GitLab cannot take gets review-refused, and every job's non-optional `needs` is in the
    pipeline (a merge request pipeline without review must still have mr-note)."""
    project, _ = gitlab_project(tmp_path, model_env, "main")
    pipeline = yaml.load((project / ".gitlab-ci.yml").read_text(), Loader=GitLabLoader)
    env = pipeline_env(model_env)
    # In a merge request pipeline GitLab sets no CI_COMMIT_BRANCH (gitlab-ci-local would).
    env["GCL_IGNORE_PREDEFINED_VARS"] += ",CI_COMMIT_BRANCH"
    merge_request = {
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_PROJECT_ID": "1",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "1",
        "CI_MERGE_REQUEST_IID": "5",
        "CI_COMMIT_BRANCH": "",
    }
    environments = {}
    for branch in ("main", "feat/a", "feat-a", "Feat-A", "fix#1"):
        if branch != "main":
            run(["git", "checkout", "--quiet", "-B", branch, "main"], project, model_env)
        listed = gitlab_ci_local(project, merge_request, env, "--list")
        assert listed.returncode == 0, listed.tail()
        rows = listed_rows(listed.stdout)
        assert "mr-note" in rows, (branch, rows)
        for job in rows:
            needs = pipeline[job].get("needs", [])
            required = [
                n if isinstance(n, str) else n["job"]
                for n in needs
                if isinstance(n, str) or not n.get("optional")
            ]
            assert set(required) <= rows.keys(), (branch, job, required, sorted(rows))
        if branch == "main":
            assert "review" not in rows
        elif branch == "fix#1":
            assert "review-refused" in rows and "review" not in rows and "stop-review" not in rows
        else:
            assert rows["review"] == rows["stop-review"] == f"review/{branch}"
            environments[branch] = rows["review"]
    assert len(set(environments.values())) == 3, environments


def listed_rows(stdout: str) -> dict[str, str]:
    """job -> environment column of `gitlab-ci-local --list`."""
    lines = stdout.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("name "))
    header = lines[header_at]
    start, end = header.index("environment"), header.index("needs")
    return {
        line.split()[0]: line[start:end].strip() for line in lines[header_at + 1 :] if line.strip()
    }


# --- the done-when on GitHub: push, deploy and teardown on a hosted runner ---------------------


def _push_event(runner: HostedRunner, repository: Repository, branch: str) -> Event:
    sha = runner.git(repository.origin, "rev-parse", f"refs/heads/{branch}")
    return Event("push", f"refs/heads/{branch}", sha, {"ref": f"refs/heads/{branch}"})


def _delete_event(runner: HostedRunner, repository: Repository, branch: str) -> Event:
    """GitHub runs `delete` workflows on the default branch's head; the payload names the ref."""
    default = repository.default_branch
    sha = runner.git(repository.origin, "rev-parse", f"refs/heads/{default}")
    return Event("delete", f"refs/heads/{default}", sha, {"ref": branch, "ref_type": "branch"})


@pytest.mark.slow
def test_github_push_deploys_a_preview_and_deleting_the_branch_removes_it(
    tmp_path, model_env, stand_ins
):
    """A fresh project as a team starts it on GitHub: pushed to a hostile branch name with only
    the repository variables the docs name, ci.yml runs job by job on hosted runners (a fresh
    machine per job, not root, only the artifacts the workflow uploads: helpers/github_runner.py),
    the branch's deletion runs teardown.yml, and a push to the default branch reaches production."""
    registry, base = stand_ins
    project = bake(tmp_path, ci_provider="github")
    run(["git", "checkout", "--quiet", "-b", EVIL_BRANCH], project, model_env)
    with hosted_runner(Path(model_env["UV_CACHE_DIR"])) as runner:
        gitops = runner.bare_repo("gitops.git")
        variables = {
            "GITOPS_REPO": str(gitops),
            "IMAGE_REPOSITORY": f"{registry}/{project.name}",
            "BASE_IMAGE": base["BASE_IMAGE"],
        }
        repository = runner.repository(project, "octo-org/model", variables, secrets={})
        ci = workflow(project, "ci.yml")
        pushed = runner.run(repository, ci, _push_event(runner, repository, EVIL_BRANCH))
        for job in ("model", "build", "deploy"):
            assert pushed.jobs[job].result == "success", f"{job}:\n{pushed.jobs[job].text()}"
        assert pushed.jobs["note"].result == "skipped"  # pull requests only

        env_name = pushed.jobs["model"].outputs["environment"]
        assert env_name == deploy_tool_env(project, EVIL_BRANCH)
        root_env = {**model_env, **runner.root_git}
        assert values_files(gitops, root_env) == [f"envs/{project.name}/{env_name}/values.yaml"]
        image = json.loads((pushed.artifacts["image"] / "image.json").read_text())
        assert (
            skopeo_inspect(f"{image['repository']}@{image['digest']}")["Digest"] == image["digest"]
        )
        deploy_log = pushed.jobs["deploy"].text()
        for label in ("preview:", "mlflow run:", "image:", "values:"):
            assert label in deploy_log, deploy_log

        runner.git(repository.origin, "branch", "--quiet", "--delete", "--force", EVIL_BRANCH)
        teardown = workflow(project, "teardown.yml")
        deleted = runner.run(repository, teardown, _delete_event(runner, repository, EVIL_BRANCH))
        for job in ("environment", "teardown"):
            assert deleted.jobs[job].result == "success", f"{job}:\n{deleted.jobs[job].text()}"
        assert deleted.jobs["environment"].outputs["name"] == env_name
        assert values_files(gitops, root_env) == []

        # The default branch's push reaches production through the gate.
        released = runner.run(repository, ci, _push_event(runner, repository, "main"))
        for job in ("model", "build", "deploy"):
            assert released.jobs[job].result == "success", f"{job}:\n{released.jobs[job].text()}"
        assert released.jobs["model"].outputs["environment"] == "production"
        assert "gate" in released.jobs["deploy"].text().lower()
        assert values_files(gitops, root_env) == [f"envs/{project.name}/production/values.yaml"]


# --- the done-when on GitLab: each job on a fresh machine of its image --------------------------


@pytest.mark.slow
def test_gitlab_feature_branch_jobs_on_fresh_machines_of_their_image(
    tmp_path, model_env, stand_ins
):
    """A fresh project's first push of a branch, each job as GitLab's Docker executor runs it
    (a fresh clone in the job image's Debian rootfs, only the caches, artifacts and CI/CD
    variables it gets: helpers/gitlab_runner.py): test -> train -> reproduce -> build -> review,
    then the manual stop, which removes the preview."""
    registry, base = stand_ins
    branch = "feat/fresh-machines"
    project, gitops = gitlab_project(tmp_path, model_env, branch)
    origin = bare_repo(tmp_path / "origin.git")
    git(project, model_env, "push", "--quiet", str(origin), "--all")
    jobs = listed_jobs(project, {"CI_DEFAULT_BRANCH": "main"}, pipeline_env(model_env))
    assert jobs == ["test", "template", "train", "reproduce", "build", "review", "stop-review"]
    variables = {"GITOPS_REPO": str(gitops), "BASE_IMAGE": base["BASE_IMAGE"]}
    with gitlab_runner(
        origin=origin, branch=branch, variables=variables, registry=registry, binds=(gitops,)
    ) as runner:
        uv_cache = extended(runner.config, "test")["cache"][0]
        runner.seed_cache(uv_cache, Path(model_env["UV_CACHE_DIR"]), ".cache/uv", runner.predefined)
        env_name = env_of(project, model_env, branch)
        values = [f"envs/{project.name}/{env_name}/values.yaml"]
        for name in jobs:
            finished = runner.job(name)
            if name != "template":  # allow_failure, information only
                assert finished.status == "success", f"{name}:\n{finished.log[-6000:]}"
            if name == "review":
                assert values_files(gitops, model_env) == values
                assert finished.dotenv["PREVIEW_URL"].startswith("http")
                # reproduce's verdict came with its artifacts (its tagged MLflow store, the DVC
                # objects): train's DVC cache is train's only.
                card = (finished.artifacts / "build" / "model_card.md").read_text()
                assert "## Reproducibility\n✅ **PASS**" in card, card
        assert values_files(gitops, model_env) == []
        assert "cache: saved dvc-non_protected" in runner.finished["train"].log
        # Another unprotected branch trains from that DVC cache (one key for all of them).
        git(project, model_env, "push", "--quiet", str(origin), f"{branch}:feat/second")
        with gitlab_runner(
            origin=origin,
            branch="feat/second",
            variables=variables,
            registry=registry,
            caches=runner.caches,
        ) as second:
            train = second.job("train")
            assert train.status == "success", train.log[-6000:]
            assert "cache: restored dvc-non_protected" in train.log
        image = json.loads(
            (runner.finished["build"].artifacts / "build" / "image.json").read_text()
        )
        assert image["repository"] == f"{registry}/group/project"
        assert (
            skopeo_inspect(f"{image['repository']}@{image['digest']}")["Digest"] == image["digest"]
        )
