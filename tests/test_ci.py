"""The CI files: generated (.gitlab-ci.yml, .github/workflows) for every ci_provider and the
template's own; the merge request report; the generated GitLab pipeline run end to end with
gitlab-ci-local; template updates with cruft."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ci_lint import actionlint_errors, describe, schema_errors, zizmor_findings
from conftest import TEMPLATE, bake, copy_project, run

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
    (project / "build" / "reproduce.json").write_text('{"verdict": "pass", "max_abs_diff": 0.0}')
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
