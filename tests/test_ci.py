"""The CI files: generated (.gitlab-ci.yml, .github/workflows) for every ci_provider and the
template's own; the merge request report; the generated GitLab pipeline run end to end with
gitlab-ci-local; template updates with cruft."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter
from helpers.gitlab import gitlab_ci_local, job_variables, pipeline_env
from helpers.gitops import bare_repo
from helpers.images import base_image_env, local_registry, skopeo_inspect
from helpers.lint import actionlint_errors, describe, schema_errors, tool, zizmor_findings
from helpers.project import CACHE, MODEL_VENV, TEMPLATE, bake, copy_project, run, setup_project

PROVIDERS = ("gitlab", "github", "both")
WORKFLOWS = {"ci.yml", "teardown.yml", "gc.yml"}


class GitLabLoader(yaml.SafeLoader):
    """GitLab's YAML: `!reference` tags are allowed (we use anchors, but parse either)."""


GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


@pytest.fixture(scope="module", params=PROVIDERS)
def generated(request, tmp_path_factory) -> tuple[str, Path]:
    provider = request.param
    return provider, bake(tmp_path_factory.mktemp(f"ci-{provider}"), ci_provider=provider)


def test_ci_files_follow_the_provider(generated):
    provider, project = generated
    workflows = {p.name for p in (project / ".github" / "workflows").glob("*")}
    assert (project / ".gitlab-ci.yml").is_file() == (provider != "github")
    assert workflows == (set() if provider == "gitlab" else WORKFLOWS)
    if provider == "gitlab":
        assert not (project / ".github").exists()


def test_generated_gitlab_ci_is_valid(generated):
    provider, project = generated
    if provider == "github":
        pytest.skip("no .gitlab-ci.yml for ci_provider=github")
    pipeline = yaml.load((project / ".gitlab-ci.yml").read_text(), Loader=GitLabLoader)
    assert pipeline["stages"] == ["test", "train", "reproduce", "build", "deploy", "stop"]
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    # Every job is one `make` call over the shared hidden base job.
    for name, job in jobs.items():
        assert job.get("extends") == ".base", name
        script = job["script"]
        assert isinstance(script, str) and script.startswith("make "), (name, script)
    assert pipeline["review"]["environment"]["on_stop"] == "stop-review"
    assert pipeline["stop-review"]["environment"]["action"] == "stop"
    assert "{{" not in (project / ".gitlab-ci.yml").read_text()
    assert schema_errors([project / ".gitlab-ci.yml"], "vendor.gitlab-ci", project) == ""


def test_generated_github_workflows_are_valid_and_clean(generated):
    provider, project = generated
    if provider == "gitlab":
        pytest.skip("no workflows for ci_provider=gitlab")
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
    base = base_image_env()
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry, base


def test_schedule_runs_gc_only(tmp_path, model_env):
    project, _ = gitlab_project(tmp_path, model_env, "main")
    env = pipeline_env(model_env)
    variables = {"CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "schedule"}
    assert listed_jobs(project, variables, env) == ["gc"]
    on_main = listed_jobs(project, {"CI_DEFAULT_BRANCH": "main"}, env)
    assert on_main == ["test", "template", "train", "reproduce", "build", "production"]
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
    tmp_path, model_env, stand_ins
):
    registry, base = stand_ins
    project, gitops = gitlab_project(tmp_path, model_env, "main")
    env = pipeline_env(model_env)
    variables = job_variables(gitops, registry, project.name, base)
    setup_project(project, model_env)

    pipeline = gitlab_ci_local(project, variables, env)
    report_timings("default branch", pipeline)
    expected = ("test", "template", "train", "reproduce", "build", "production")
    for job in expected:
        assert pipeline.results.get(job) == "PASS", (
            f"{job}: {pipeline.results}\n{pipeline.tail(job)}"
        )
    assert "review" not in pipeline.results
    production = f"envs/{project.name}/production/values.yaml"
    assert values_files(gitops, model_env) == [production]
    before = run(["git", "rev-parse", "HEAD"], gitops, model_env).stdout

    # A much worse model on the default branch: the gate refuses it, production stays.
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.00001"))
    run(["git", "commit", "--quiet", "-am", "worse model"], project, model_env)
    worse = gitlab_ci_local(project, variables, env, "train", "build", "production")
    assert worse.results.get("train") == "PASS", worse.tail("train")
    assert worse.results.get("production") == "FAIL", worse.tail("production")
    assert run(["git", "rev-parse", "HEAD"], gitops, model_env).stdout == before


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
    # No image build here (the feature-branch test does it): the deploy reads this record.
    (project / "build").mkdir(exist_ok=True)
    (project / "build" / "image.json").write_text(
        json.dumps({"repository": "127.0.0.1:5000/x", "tag": "t", "digest": "sha256:" + "0" * 64})
    )
    before = {p for p in Path("/tmp").iterdir()}
    deployed = gitlab_ci_local(project, variables, env, "test", "review")
    assert deployed.results == {"test": "PASS", "review": "PASS"}, deployed.tail()
    # gitlab-ci-local expands `${IFS}` inside its CI_COMMIT_REF_NAME (GitLab would not): take
    # the environment the job reported, and check it is the one in the GitOps repo.
    env_name = re.search(r"environment: (\S+)", deployed.tail("review")).group(1)
    assert env_name.startswith("feat-touch"), env_name
    assert values_files(gitops, model_env) == [f"envs/{project.name}/{env_name}/values.yaml"]
    stopped = gitlab_ci_local(project, variables, env, "stop-review")
    assert stopped.results.get("stop-review") == "PASS", stopped.tail()
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
