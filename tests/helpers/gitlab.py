"""Run a generated project's .gitlab-ci.yml with gitlab-ci-local (shell executor, no Docker)
against local stand-ins: a bare GitOps repo, Debian's docker-registry, a debootstrap base image."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.project import CACHE, MODEL_VENV, require_tool

RESULT = re.compile(r"^\s*(PASS|FAIL|WARN)\s+(\S+)", re.MULTILINE)
TIMING = re.compile(r"^(\S+)\s+finished in ([\d.]+ (?:ms|s|min))", re.MULTILINE)


@dataclass
class Pipeline:
    returncode: int
    log: str
    seconds: float
    stdout: str = ""
    results: dict[str, str] = field(default_factory=dict)  # job -> PASS | FAIL | WARN
    timings: dict[str, str] = field(default_factory=dict)  # job -> "1.2 min"

    def tail(self, job: str | None = None, chars: int = 6000) -> str:
        lines = self.log.splitlines()
        if job:
            lines = [line for line in lines if line.startswith(job + " ")]
        return "\n".join(lines)[-chars:]


def gitlab_ci_local(
    project: Path, variables: dict[str, str], env: dict[str, str], *jobs: str, timeout: int = 1800
) -> Pipeline:
    """`gitlab-ci-local [jobs]` in the project (whole pipeline when no job is named)."""
    command = [
        require_tool("gitlab-ci-local"),
        "--force-shell-executor",  # the jobs' image is for real runners; here: this machine
        "--home",
        str(project.parent / "gcl-home"),
        "--state-dir",
        ".gitlab-ci-local",
    ]
    for key, value in variables.items():
        command += ["--variable", f"{key}={value}"]
    command += list(jobs)
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    log = result.stdout + result.stderr
    return Pipeline(
        returncode=result.returncode,
        log=log,
        seconds=round(time.monotonic() - started, 1),
        stdout=result.stdout,
        results={job: verdict for verdict, job in RESULT.findall(log)},
        timings=dict(TIMING.findall(log)),
    )


def pipeline_env(env: dict[str, str]) -> dict[str, str]:
    """The test environment, minus what would leak the outer CI into the jobs."""
    clean = {k: v for k, v in env.items() if not k.startswith(("CI_", "GITLAB_", "GITHUB_"))}
    # CI_DEFAULT_BRANCH is set on purpose (no origin remote here to read it from).
    clean["GCL_IGNORE_PREDEFINED_VARS"] = "CI_DEFAULT_BRANCH,CI_PIPELINE_SOURCE,CI_PROJECT_ID"
    clean["PATH"] = f"{CACHE / 'node' / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
    return clean


def job_variables(
    gitops: Path, registry: str, project_name: str, base: dict[str, str]
) -> dict[str, str]:
    """What a real project sets as CI/CD variables, pointed at the local stand-ins."""
    return {
        "CI_DEFAULT_BRANCH": "main",
        # Jobs share the session's venv and uv cache (a runner would restore the uv cache).
        "UV_PROJECT_ENVIRONMENT": str(MODEL_VENV),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv")),
        "GITOPS_REPO": str(gitops),
        "IMAGE_REPOSITORY": f"{registry}/{project_name}",
        # `make setup` warmed that cache with every wheel of the lock: no job needs an index.
        "UV_OFFLINE": "1",
        **base,
    }
