"""Baking the template: option combinations, the exact files, rendering, and refused input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers.project import TEMPLATE, bake, checkout_files, run

SUPPORTED = [
    {"ci_provider": "gitlab", "python_version": "3.11", "dataset": "breast_cancer"},
    {"ci_provider": "github", "python_version": "3.12", "dataset": "wine"},
    {"ci_provider": "both", "python_version": "3.13", "dataset": "diabetes"},
    {
        "ci_provider": "both",
        "python_version": "3.11",
        "dataset": "breast_cancer",
        "project": "a" * 24,
        "default_branch": "trunk",
    },
]
TEXT_SUFFIXES = {
    ".py",
    ".yml",
    ".yaml",
    ".toml",
    ".json",
    ".md",
    ".cfg",
    ".lock",
    ".txt",
    ".lua",
    ".sh",
    "",
}


def generated_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


@pytest.fixture(scope="module", params=SUPPORTED, ids=lambda c: "-".join(c.values()))
def baked(request, tmp_path_factory) -> tuple[dict, Path]:
    return request.param, bake(tmp_path_factory.mktemp("combo"), **request.param)


# Every project gets these; `{package}` is the project's Python package.
COMMON_FILES = {
    ".cruft.json", ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore",
    ".python-version", "Makefile", "README.md", "bentofile.yaml",
    "data/raw/.gitignore", "dvc.yaml", "params.yaml", "pyproject.toml", "uv.lock",
    "docs/going-to-production.md", "docs/image.md", "docs/model-use.md", "docs/performance.md",
    "docs/serving.md",
    # The model package: the data scientist's.
    *(
        f"src/{{package}}/{module}.py"
        for module in (
            "__init__", "atomic", "config", "data", "errors", "evaluate", "features", "model",
            "paths", "prepare", "service", "train",
            "serving/__init__", "serving/api", "serving/batch", "serving/fastpath",
            "serving/guard", "serving/inputs", "serving/metrics", "serving/predlog",
            "serving/runtime",
        )
    ),
    # The delivery toolkit: the template's.
    *(
        f"deploy/{module}.py"
        for module in (
            "__init__", "artifacts", "bento", "champion", "commands", "compare", "data_setup",
            "deployed_model", "drift", "dvc_remote", "forge", "gate", "lineage", "markdown",
            "mlflow_client", "model_card", "model_registry", "naming", "params", "plots", "profile", "report",
            "reproduce", "retrain", "sample_data", "score", "settings", "track", "urls",
            "bench/__init__", "bench/__main__", "bench/fastapi_app",
            "image/__init__", "image/__main__", "image/base", "image/layers", "image/oci",
            "image/recipe", "image/registry", "image/venv",
            "gitops/__init__", "gitops/__main__", "gitops/deploy", "gitops/envs",
            "gitops/environments", "gitops/gc", "gitops/repo", "gitops/rollback",
            "gitops/teardown", "gitops/values", "gitops/verify",
        )
    ),
    "deploy/bench/post.lua", "deploy/values.schema.json", "deploy/values.yaml",
    "deploy/values-production.yaml", "deploy/values-preview.yaml",
    *(
        f"tests/{module}.py"
        for module in (
            "conftest", "test_architecture",
            "{package}/test_batch", "{package}/test_fastpath", "{package}/test_guard_range",
            "{package}/test_inputs", "{package}/test_metrics", "{package}/test_pipeline",
            "{package}/test_predlog", "{package}/test_service",
            "deploy/test_artifacts", "deploy/test_forge", "deploy/test_gate",
            "deploy/test_mlflow_client", "deploy/test_model_card", "deploy/test_naming",
            "deploy/test_params", "deploy/test_plots", "deploy/test_profile",
            "deploy/test_remote_errors", "deploy/test_report", "deploy/test_reproduce",
            "deploy/test_retrain", "deploy/test_sample_data", "deploy/test_score",
            "deploy/test_tracking", "deploy/test_urls", "deploy/test_values", "deploy/test_verify",
        )
    ),
}  # fmt: skip
CI_FILES = {
    "gitlab": {".gitlab-ci.yml"},
    "github": {
        f".github/workflows/{name}" for name in ("ci.yml", "gc.yml", "rollback.yml", "teardown.yml")
    },
}
CI_FILES["both"] = CI_FILES["gitlab"] | CI_FILES["github"]


def test_exactly_the_files_of_the_options(baked) -> None:
    options, project = baked
    dataset = options["dataset"]
    expected = {name.format(package=project.name.replace("-", "_")) for name in COMMON_FILES}
    expected |= CI_FILES[options["ci_provider"]]
    expected |= {f"data/raw/{dataset}.csv.dvc"}  # `make setup` writes the sample CSV
    assert generated_files(project) == expected
    empty = [p for p in project.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert not [p for p in empty if ".git" not in p.relative_to(project).parts]


def test_nothing_is_left_unrendered(baked) -> None:
    _, project = baked
    for name in generated_files(project):
        path = project / name
        if path.suffix not in TEXT_SUFFIXES or name.endswith(".csv"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "{{ cookiecutter" not in text and "{{cookiecutter" not in text, name
        assert "{%" not in text, name


def test_project_metadata(baked) -> None:
    options, project = baked
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == project.name
    assert pyproject["tool"]["mlops"]["default-branch"] == options.get("default_branch", "main")
    assert (project / ".python-version").read_text().strip() == options["python_version"]
    package = project.name.replace("-", "_")
    assert (project / "src" / package / "train.py").is_file()
    lock = (project / "uv.lock").read_text()
    assert f'name = "{project.name}"' in lock


def test_the_uv_version_is_written_once() -> None:
    """cookiecutter.json holds it; the generated pyproject, pipelines and the bootstrap read it."""
    version = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__uv_version"]
    elsewhere = [
        name
        for name in checkout_files(TEMPLATE)
        if Path(name).name not in ("cookiecutter.json", "uv.lock")
        and not (TEMPLATE / name).is_symlink()
        and version in (TEMPLATE / name).read_text(errors="replace")
    ]
    assert elsewhere == []


def test_the_generated_repo_uses_that_uv_version(baked) -> None:
    _, project = baked
    version = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__uv_version"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert f"uv=={version}" in pyproject["dependency-groups"]["pipeline"]
    pipelines = [*project.glob(".gitlab-ci.yml"), *project.glob(".github/workflows/*.yml")]
    assert pipelines and all(version in path.read_text() for path in pipelines)


def test_the_test_mlflow_server_is_the_generated_projects_mlflow() -> None:
    """tests/helpers/mlflow_server.py serves with the dev venv's MLflow: the projects' version."""
    dev = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    template = (TEMPLATE / "{{cookiecutter.project}}" / "pyproject.toml").read_text()
    generated = tomllib.loads(template.replace("{{ cookiecutter.__uv_version }}", "0"))
    pinned = [p for p in generated["dependency-groups"]["pipeline"] if p.startswith("mlflow==")]
    assert [p.replace("mlflow[auth]", "mlflow") for p in dev if p.startswith("mlflow")] == pinned


def test_setup_without_uv_says_how_to_install_it_in_one_line(baked_project, tmp_path) -> None:
    project = Path(shutil.copytree(baked_project, tmp_path / baked_project.name, symlinks=True))
    no_uv = tmp_path / "bin"  # only what make itself needs: no uv on PATH
    no_uv.mkdir()
    for tool in ("make", "bash"):
        (no_uv / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(
        ["make", "setup"],
        cwd=project,
        env={"PATH": str(no_uv), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    version = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__uv_version"]
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "uv is not installed" in result.stderr
    assert f"pip install --user uv=={version}" in result.stderr


def test_yaml_and_json_parse(baked) -> None:
    _, project = baked
    for name in generated_files(project):
        if name.endswith((".yml", ".yaml", ".dvc")):
            yaml.safe_load((project / name).read_text())
        elif name.endswith(".json"):
            json.loads((project / name).read_text())
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"]["path"] + ".dvc" in generated_files(project)


def test_generated_python_passes_ruff(baked) -> None:
    _, project = baked
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_repository_is_initialised_and_clean(baked) -> None:
    options, project = baked
    git = lambda *a: (
        subprocess.run(["git", *a], cwd=project, capture_output=True, text=True, check=False).stdout
    )
    assert git("branch", "--show-current").strip() == options.get("default_branch", "main")
    assert git("rev-list", "--count", "HEAD").strip() == "1"
    assert git("status", "--porcelain") == ""
    ignored = git("check-ignore", f"data/raw/{options['dataset']}.csv", "mlflow.db", "models/x")
    assert len(ignored.splitlines()) == 3


# The generated repo's own tests of its layout and of the toolkit's pure parts: they need no
# trained model, so they run here in the template's venv (the rest runs in `make test` below).
TOOLKIT_UNIT_TESTS = (
    "tests/test_architecture.py",
    "tests/deploy/test_naming.py",
    "tests/deploy/test_gate.py",
    "tests/deploy/test_forge.py",
    "tests/deploy/test_values.py",
    "tests/deploy/test_urls.py",
    "tests/deploy/test_remote_errors.py",
    "tests/deploy/test_verify.py",
)


def test_the_generated_layout_and_toolkit_tests_pass(baked_project: Path, tmp_path: Path) -> None:
    project = tmp_path / baked_project.name
    shutil.copytree(baked_project, project, symlinks=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--noconftest", "-q", "-p", "no:cacheprovider"]
        + list(TOOLKIT_UNIT_TESTS),
        cwd=project,
        env={**os.environ, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


BAD_INPUT = [
    ("project", "Bad Name", "project='Bad Name'", "DNS-1035"),
    ("project", "1model", "project='1model'", "DNS-1035"),
    ("project", "model-", "project='model-'", "DNS-1035"),
    ("project", "a" * 25, "is 25 characters long; the limit is 24", "limit"),
    ("project", "json", "__package='json'", "standard-library"),
    ("project", "sklearn", "__package='sklearn'", "depends on"),
    ("project", "mlflow", "__package='mlflow'", "depends on"),
    ("project", "deploy", "__package='deploy'", "depends on"),
    ("project", "class", "__package='class'", "keyword"),
    ("project_name", 'My "quoted" model', "project_name=", "double quotes"),
    ("mlflow_tracking_uri", "ftp://x", "mlflow_tracking_uri='ftp://x'", "schemes"),
    ("mlflow_tracking_uri", "https://", "mlflow_tracking_uri='https://'", "host"),
    ("image_registry", "Registry.Example.com", "image_registry=", "lower case"),
    ("gitops_repo", "https:///nohost", "gitops_repo=", "host"),
    ("gitops_repo", "my repo", "gitops_repo='my repo'", "without spaces"),
    ("preview_domain", "-bad.example", "preview_domain=", "DNS name"),
    ("default_branch", "feat..x", "default_branch='feat..x'", "git branch name"),
]


def cookiecutter_cli(
    template: str, output: Path, *options: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`cookiecutter --no-input` as a user runs it, in a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", template, "-o", str(output), *options],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(("field", "value", "names", "rule"), BAD_INPUT, ids=lambda v: str(v)[:20])
def test_bad_input_fails_with_one_line_and_leaves_nothing(
    tmp_path, field, value, names, rule
) -> None:
    extra = ["project=ok-project"] if field == "project_name" else []
    result = cookiecutter_cli(str(TEMPLATE), tmp_path, *extra, f"{field}={value}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.stderr
    assert names in errors[0] and rule in errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("ci_provider", "jenkins"), ("python_version", "3.9"), ("dataset", "mnist")],
)
def test_unsupported_choices_are_refused(tmp_path, field, value) -> None:
    result = cookiecutter_cli(str(TEMPLATE), tmp_path, f"{field}={value}")
    assert result.returncode != 0
    assert field in result.stderr and value in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_relative_template_path_works(tmp_path) -> None:
    """The hooks find the template when cookiecutter is given `.` from the template directory."""
    result = cookiecutter_cli(".", tmp_path, "project=rel", cwd=TEMPLATE)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rel" / "params.yaml").is_file()


@pytest.mark.slow
def test_setup_test_and_train_twice(trained_project: Path, model_env: dict) -> None:
    """The foundation loop: setup and train (fixture), the project's own tests, then a no-op train."""
    run(["make", "test"], trained_project, model_env, timeout=900)
    again = run(["make", "train"], trained_project, model_env)
    assert "Running stage" not in again.stdout
    assert "unchanged" in again.stdout

    lineage = json.loads((trained_project / "build/lineage.json").read_text())
    python = Path(model_env["UV_PROJECT_ENVIRONMENT"]) / "bin" / "python"
    check = f"""
import json, mlflow
client = mlflow.MlflowClient("sqlite:///mlflow.db")
run = client.get_run({lineage["mlflow_run_id"]!r})
version = client.get_model_version({lineage["model_name"]!r}, {lineage["model_version"]!r})
print(json.dumps({{"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags,
                  "version_run": version.run_id, "aliases": list(version.aliases)}}))
"""
    found = json.loads(run([str(python), "-c", check], trained_project, model_env).stdout)
    assert found["params"]["data.target"] == "diagnosis"
    assert found["metrics"]["accuracy"] > 0.9
    assert found["tags"]["git_branch"] == "main"
    assert found["tags"]["data_md5"] == "0d1690bbd5734538a9c8b3b1dc902760"
    assert found["version_run"] == lineage["mlflow_run_id"]
    assert found["aliases"] == []  # `production` moves when a deploy puts the version there


@pytest.mark.slow
def test_every_sample_is_the_file_its_pointer_names(trained_project: Path, model_env: dict) -> None:
    """Each data set option's CSV, written from scikit-learn, has its .dvc pointer's md5."""
    pointers = {
        path.name.split("'")[1]: yaml.safe_load(path.read_text())["outs"][0]["md5"]
        for path in (TEMPLATE / "{{cookiecutter.project}}" / "data" / "raw").glob("*.csv.dvc*")
    }
    code = (
        "import hashlib, json, sys\n"
        "from deploy.sample_data import SAMPLES, sample_csv\n"
        "print(json.dumps({n: hashlib.md5(sample_csv(n)).hexdigest() for n in SAMPLES}))\n"
    )
    python = Path(model_env["UV_PROJECT_ENVIRONMENT"]) / "bin" / "python"
    env = {**model_env, "PYTHONPATH": f"{trained_project / 'src'}:{trained_project}"}
    written = json.loads(run([str(python), "-c", code], trained_project, env).stdout)
    assert written == pointers


@pytest.mark.slow
def test_the_readme_layout_names_every_top_level_folder(trained_project: Path) -> None:
    readme = (trained_project / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    named = {word.split("/")[0] for line in layout.splitlines() for word in line.split()[:2]}
    tool_caches = {".hypothesis", ".pytest_cache", ".ruff_cache"}  # left by `make test`
    folders = {p.name for p in trained_project.iterdir() if p.is_dir()} - {".git", ".venv"}
    folders -= tool_caches
    assert folders - named == set(), "README layout misses these folders"
