"""A GitLab runner with the Docker executor, for the generated .gitlab-ci.yml: each job on a
fresh machine, as GitLab runs it (gitlab-ci-local's shell executor shares one directory and this
machine's tools: helpers/gitlab.py).

A job gets:
- its image: a Debian root filesystem made with debootstrap, holding part of what the image
  holds (the default CI_IMAGE, ghcr.io/astral-sh/uv:<uv>-python3.11-bookworm: Debian bookworm,
  Python 3.11, uv, git, make; no skopeo), as root, on an overlay so that every job starts from
  it unchanged; this machine's network (the registry and servers on 127.0.0.1) and DNS;
- a fresh clone at CI_PROJECT_DIR (/builds/<namespace>/<project> in every job): the commit,
  detached, GIT_DEPTH commits deep (20, GitLab's default), or nothing with GIT_STRATEGY none;
- variables: GitLab's predefined ones for a push pipeline, the file's and the job's, the CI/CD
  variables given, and the dotenv reports of the jobs it takes artifacts from, expanded and
  ranked as GitLab does;
- artifacts: the `paths` of the jobs in its `needs`, else its `dependencies`, else of every job
  of an earlier stage;
- caches: `key` (or `<prefix>-<hash>` for key:files) with GitLab's -protected/-non_protected
  suffix, fallback_keys suffixed alike, policies pull, push and pull-push, saved after a
  successful job; kept on the runner as hard links, so a cache is cheap to restore;
- before_script and script in one bash, `set -eo pipefail`.

Where it differs from GitLab: uv runs offline (UV_OFFLINE), the uv cache being seeded with the
session's (no downloads at run time; apt-get in the build job does reach Debian's mirror).
Not modelled: rules (gitlab-ci-local --list evaluates them), resource groups, the environments'
lifecycle, services.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.images import link_tree
from helpers.project import CACHE, exclusive, require_mount_namespaces, require_tool, run

DEFAULT_IMAGE = re.compile(r"ghcr\.io/astral-sh/uv:(?P<uv>[\d.]+)-python3\.11-bookworm")
IMAGE_PACKAGES = "python3,git,make,ca-certificates"  # of the image's: what the jobs call
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_GIT_DEPTH = "20"
OFFLINE = {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}

# $1 image rootfs, $2 a scratch directory, $3 "host:path ..." binds; the rest: `env -i ...`.
RUN_JOB = r"""
set -eu
image=$1 scratch=$2 binds=$3; shift 3
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
root=$scratch/root
mount -t overlay overlay -o "lowerdir=$image,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
cp /etc/resolv.conf "$root/etc/resolv.conf"  # the host's DNS, as Docker's default network
for pair in $binds; do mkdir -p "$root${pair#*:}"; mount --bind "${pair%%:*}" "$root${pair#*:}"; done
exec chroot "$root" "$@"
"""


class GitLabLoader(yaml.SafeLoader):
    """GitLab's YAML: `!reference` tags are allowed (we use anchors, but parse either)."""


GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def job_image(name: str) -> Path:
    """The root filesystem standing in for the job image `name`, made once per machine."""
    match = DEFAULT_IMAGE.fullmatch(name)
    assert match, f"no stand-in for the image {name}"
    uv = require_tool("uv")
    installed = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    assert installed.stdout.split()[1] == match["uv"], (installed.stdout, name)
    rootfs = CACHE / "job-images" / f"uv-{match['uv']}-python3.11-bookworm"
    with exclusive("job-images"):
        if not rootfs.is_dir():
            require_tool("debootstrap")
            rootfs.parent.mkdir(exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=rootfs.parent))
            command = ["debootstrap", "--variant=minbase", f"--include={IMAGE_PACKAGES}"]
            run([*command, "bookworm", str(work / "rootfs"), MIRROR], work, dict(os.environ))
            shutil.copy2(uv, work / "rootfs" / "usr" / "local" / "bin" / "uv")
            (work / "rootfs").rename(rootfs)  # whole or not at all
            shutil.rmtree(work)
    return rootfs


def extended(jobs: dict, name: str) -> dict:
    """A job with its `extends` merged in: hashes deeply, anything else replaced."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = merge(out[key], value) if both else value
        return out

    job = jobs[name]
    parents = job.get("extends", [])
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = merge(merged, extended(jobs, parent))
    return {k: v for k, v in merge(merged, job).items() if k != "extends"}


def expand(text: str, variables: dict[str, str]) -> str:
    """$NAME and ${NAME} as GitLab expands them in variables and keywords ($$ is a `$`)."""
    pattern = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")
    return pattern.sub(lambda m: "$" if m[0] == "$$" else variables.get(m[1] or m[2], ""), text)


def _lines(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "-", name.lower())[:63].strip("-")


@dataclass
class Finished:
    name: str
    status: str  # success or failed
    log: str
    artifacts: Path | None = None
    dotenv: dict[str, str] = field(default_factory=dict)


class GitLabRunner:
    """Runs the jobs of one push pipeline of `branch` of the repository `origin`. `variables`
    are the project's CI/CD variables; `binds` are host paths the jobs may reach (a GitOps repo
    given by path, as a volume); `caches` is the runner's cache of earlier pipelines."""

    def __init__(
        self,
        root: Path,
        origin: Path,
        branch: str,
        variables: dict[str, str],
        registry: str,
        binds: tuple[Path, ...] = (),
        caches: Path | None = None,
        project_path: str = "group/project",
    ):
        require_mount_namespaces("running CI jobs in their image")
        self.root, self.origin, self.branch = root, origin, branch
        self.variables, self.binds = variables, binds
        self.sha = self.git(origin, "rev-parse", f"refs/heads/{branch}")
        self.default_branch = self.git(origin, "symbolic-ref", "--short", "HEAD")
        self.config = yaml.load(
            self.git(origin, "show", f"{self.sha}:.gitlab-ci.yml"), Loader=GitLabLoader
        )
        self.stages = self.config["stages"]
        self.project_dir = f"/builds/{project_path}"
        self.predefined = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_SERVER_URL": "https://gitlab.example.com",
            "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
            "CI_PROJECT_DIR": self.project_dir,
            "CI_PROJECT_PATH": project_path,
            "CI_PROJECT_NAME": project_path.rsplit("/", 1)[1],
            "CI_PROJECT_NAMESPACE": project_path.rsplit("/", 1)[0],
            "CI_PROJECT_ID": "1",
            "CI_PROJECT_URL": f"https://gitlab.example.com/{project_path}",
            "CI_COMMIT_SHA": self.sha,
            "CI_COMMIT_SHORT_SHA": self.sha[:8],
            "CI_COMMIT_REF_NAME": branch,
            "CI_COMMIT_BRANCH": branch,
            "CI_COMMIT_REF_SLUG": _slug(branch),
            "CI_COMMIT_REF_PROTECTED": str(branch == self.default_branch).lower(),
            "CI_DEFAULT_BRANCH": self.default_branch,
            "CI_PIPELINE_SOURCE": "push",
            "CI_PIPELINE_ID": "100",
            "CI_REGISTRY": registry,
            "CI_REGISTRY_IMAGE": f"{registry}/{project_path}",
            "CI_REGISTRY_USER": "gitlab-ci-token",
            "GITLAB_USER_LOGIN": "developer",
        }
        self.caches = caches or root / "caches"  # the runner's local cache
        self.caches.mkdir(exist_ok=True)
        self.finished: dict[str, Finished] = {}

    @staticmethod
    def git(repo: Path, *args: str) -> str:
        return run(["git", *args], repo, dict(os.environ)).stdout.strip()

    # -- one job ----------------------------------------------------------------------------------

    def job(self, name: str) -> Finished:
        job = extended(self.config, name)
        variables = self.variables_of(name, job)
        workspace = self.root / f"job-{len(self.finished)}-{name}"
        workspace.mkdir()
        log: list[str] = []
        if variables.get("GIT_STRATEGY", "fetch") != "none":
            self.clone(workspace, variables.get("GIT_DEPTH", DEFAULT_GIT_DEPTH))
        caches = job.get("cache", [])
        caches = [caches] if isinstance(caches, dict) else caches
        for cache in caches:
            log.append(self.restore_cache(cache, workspace, variables))
        for source in self.artifact_sources(name, job):
            if self.finished[source].artifacts:
                shutil.copytree(self.finished[source].artifacts, workspace, dirs_exist_ok=True)

        script = ["set -eo pipefail", f'cd "{self.project_dir}"']
        script += [*_lines(job.get("before_script")), *_lines(job["script"])]
        image = job_image(expand(job.get("image", ""), variables))
        binds = [f"{workspace}:{self.project_dir}", *(f"{b}:{b}" for b in self.binds)]
        with tempfile.TemporaryDirectory(dir=self.root) as scratch:
            command = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork"]
            command += ["sh", "-c", RUN_JOB, "sh", str(image), scratch, " ".join(binds)]
            command += ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items())]
            command += ["bash", "--noprofile", "--norc", "-c", "\n".join(script)]
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=3600, check=False
            )
        log.append(done.stdout + done.stderr)
        status = "success" if done.returncode == 0 else "failed"
        if status == "success":
            for cache in caches:
                log.append(self.save_cache(cache, workspace, variables))
        finished = Finished(name, status, "\n".join(log))
        self.keep_artifacts(finished, job, workspace)
        self.finished[name] = finished
        return finished

    def variables_of(self, name: str, job: dict) -> dict[str, str]:
        """GitLab's ranking, lowest first: predefined, the file's, the job's, the dotenv reports
        of its artifact sources, the CI/CD variables; then references expanded."""
        variables = {
            "HOME": "/root",
            "PATH": IMAGE_PATH,
            **self.predefined,
            "CI_JOB_NAME": name,
            "CI_JOB_STAGE": job.get("stage", "test"),
            "CI_JOB_TOKEN": f"glcbt-job-{len(self.finished)}",
        }
        variables["CI_REGISTRY_PASSWORD"] = variables["CI_JOB_TOKEN"]
        for scope in (self.config.get("variables"), job.get("variables")):
            for key, value in (scope or {}).items():
                value = value["value"] if isinstance(value, dict) else value
                variables[key] = expand(str(value), variables)
        for source in self.artifact_sources(name, job):
            variables.update(self.finished[source].dotenv)
        variables.update(self.variables)
        variables.update(OFFLINE)
        if "environment" in job:
            environment = job["environment"]
            environment = environment if isinstance(environment, dict) else {"name": environment}
            variables["CI_ENVIRONMENT_NAME"] = expand(environment["name"], variables)
            variables["CI_ENVIRONMENT_SLUG"] = _slug(variables["CI_ENVIRONMENT_NAME"])
            variables["CI_ENVIRONMENT_ACTION"] = environment.get("action", "start")
        return variables

    def clone(self, workspace: Path, depth: str) -> None:
        """What the runner's helper does: fetch the branch `depth` deep, check out the commit."""
        git = ["git", "-C", str(workspace)]
        run([*git, "init", "--quiet"], workspace, dict(os.environ))
        run([*git, "remote", "add", "origin", f"file://{self.origin}"], workspace, dict(os.environ))
        refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        deep = [f"--depth={depth}"] if depth != "0" else []
        run([*git, "fetch", "--quiet", *deep, "origin", refspec], workspace, dict(os.environ))
        run([*git, "checkout", "--quiet", "--force", self.sha], workspace, dict(os.environ))

    def artifact_sources(self, name: str, job: dict) -> list[str]:
        if "needs" in job:
            needs = [n if isinstance(n, dict) else {"job": n} for n in job["needs"]]
            return [n["job"] for n in needs if n["job"] in self.finished]
        if "dependencies" in job:
            return list(job["dependencies"])
        stage = self.stages.index(job.get("stage", "test"))
        earlier = [
            other
            for other in self.finished
            if self.stages.index(extended(self.config, other).get("stage", "test")) < stage
        ]
        return earlier

    # -- caches and artifacts ---------------------------------------------------------------------

    def cache_key(self, key, variables: dict[str, str]) -> str:
        if isinstance(key, dict):  # key:files: the commits that last changed the files
            commits = [
                self.git(self.origin, "log", "-1", "--format=%H", self.sha, "--", path)
                for path in key["files"]
            ]
            digest = hashlib.sha1("".join(commits).encode()).hexdigest()
            key = f"{key['prefix']}-{digest}" if key.get("prefix") else digest
        key = expand(str(key or "default"), variables)
        protected = variables["CI_COMMIT_REF_PROTECTED"] == "true"
        return f"{key}-{'protected' if protected else 'non_protected'}"

    def restore_cache(self, cache: dict, workspace: Path, variables: dict[str, str]) -> str:
        if cache.get("policy", "pull-push") == "push":
            return "cache: push only, nothing restored"
        keys = [self.cache_key(cache.get("key"), variables)]
        keys += [self.cache_key(k, variables) for k in cache.get("fallback_keys", [])]
        for key in keys:
            if (self.caches / key).is_dir():
                copy_linked(self.caches / key, workspace)
                return f"cache: restored {key}"
        return f"cache: no cache among {keys}"

    def save_cache(self, cache: dict, workspace: Path, variables: dict[str, str]) -> str:
        if cache.get("policy", "pull-push") == "pull":
            return "cache: pull only, not saved"
        key = self.cache_key(cache.get("key"), variables)
        staged = self.caches / f".{key}.new"
        for path in cache["paths"]:
            if (workspace / path).exists():
                (staged / path).parent.mkdir(parents=True, exist_ok=True)
                copy_linked(workspace / path, staged / path)
        shutil.rmtree(self.caches / key, ignore_errors=True)
        staged.mkdir(exist_ok=True)
        staged.rename(self.caches / key)  # GitLab's caches are overwritten, not versioned
        return f"cache: saved {key}"

    def seed_cache(self, cache: dict, content: Path, path: str, variables: dict[str, str]) -> None:
        """A cache entry as an earlier pipeline would have left it (`content` at `path`)."""
        target = self.caches / self.cache_key(cache.get("key"), variables) / path
        target.parent.mkdir(parents=True)
        copy_linked(content, target)

    def keep_artifacts(self, finished: Finished, job: dict, workspace: Path) -> None:
        artifacts = job.get("artifacts") or {}
        when = artifacts.get("when", "on_success")
        if when != "always" and (when == "on_failure") == (finished.status == "success"):
            return
        kept = self.root / f"artifacts-{finished.name}"
        for pattern in artifacts.get("paths", []):
            for match in glob.glob(str(workspace / pattern), recursive=True, include_hidden=True):
                relative = Path(match).relative_to(workspace)
                if Path(match).is_dir():
                    shutil.copytree(match, kept / relative, symlinks=True, dirs_exist_ok=True)
                else:
                    (kept / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, kept / relative)
        finished.artifacts = kept if kept.exists() else None
        dotenv = (artifacts.get("reports") or {}).get("dotenv")
        if dotenv and (workspace / dotenv).is_file():
            lines = (workspace / dotenv).read_text().splitlines()
            finished.dotenv = dict(line.split("=", 1) for line in lines if "=" in line)


def copy_linked(source: Path, target: Path) -> None:
    """`source` (a file or a directory) at `target`, files hard-linked."""
    if source.is_dir():
        link_tree(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)


@contextmanager
def gitlab_runner(**settings) -> Iterator[GitLabRunner]:
    root = Path(tempfile.mkdtemp(prefix="gitlab-runner-"))
    try:
        yield GitLabRunner(root, **settings)
    finally:
        shutil.rmtree(root, ignore_errors=True)
