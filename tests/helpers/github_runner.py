"""A GitHub-hosted runner, for the generated workflows: their jobs run the way GitHub runs them,
each on a fresh machine.

A job gets what a job on an ubuntu-24.04 hosted runner gets, and nothing more:
- an empty workspace at the same path in every job (GITHUB_WORKSPACE), a new home and temp dir,
  and an unprivileged user for every step (the hosted runner's user is not root);
- the repository's variables and secrets, and the runner's GITHUB_* variables;
- actions/checkout: `ref` (a commit: detached), else the event's commit on its branch, made with
  `git checkout -B <branch> refs/remotes/origin/<branch>`, which records the branch in
  .git/config; one commit deep unless fetch-depth is 0; no credentials kept;
- actions/setup-python, astral-sh/setup-uv: this machine's Python of the project's version and
  uv at the pinned version (another pin fails the step), with the uv cache restored;
- actions/cache: immutable keys; the exact key, else a key or restore-key prefix (newest first),
  from the run's branch, then the default branch; saved after a successful job only;
- actions/upload-artifact, download-artifact (v4): per run, one artifact per name, files stored
  relative to the least common ancestor of the paths (a lone file: its directory), hidden files
  only with include-hidden-files;
- `run:` steps: bash -e -o pipefail, `${{ }}` rendered into the script, env from the workflow,
  the job and the step, GITHUB_OUTPUT; `if:` as GitHub evaluates it (helpers/github_expressions).

Stood in for: GitHub's REST API (`gh api .../branches-where-head`, answered from the branch heads
of the repository), and downloads (uv runs offline from a copy of the session's uv cache).
Not modelled: concurrency groups, environments and their protection rules (tests/test_ci.py
checks those against GitHub's documented semantics), services and containers.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers.github_expressions import condition, gh_eval, gh_render, gh_truthy, glob_regex
from helpers.gitops import bare_repo
from helpers.images import SYSTEM_PATH, chown_tree, own_uv_cache
from helpers.project import require_tool, run

RUNNER = "nobody"
# Where this runner differs from GitHub's: no downloads at run time, so uv stays offline on the
# restored cache and copies from it (its files are root's, and cannot be hard-linked).
UV_ON_THIS_MACHINE = {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
# gh, standing in for the REST API calls the workflows make, answered from the repository (ORIGIN).
GH_API = r"""#!/bin/sh
# GET /repos/{repo}/commits/{sha}/branches-where-head, as `gh api --paginate PATH --jq .[].name`
[ -n "$GH_TOKEN" ] || { echo "gh: no GH_TOKEN" >&2; exit 4; }
[ "$1 $2 $4 $5" = "api --paginate --jq .[].name" ] || { echo "gh: not stood in for: $*" >&2; exit 1; }
sha=${3#"repos/$GITHUB_REPOSITORY/commits/"}
sha=${sha%/branches-where-head}
[ "repos/$GITHUB_REPOSITORY/commits/$sha/branches-where-head" = "$3" ] || { echo "gh: $3?" >&2; exit 1; }
exec git -C ORIGIN for-each-ref --points-at "$sha" --format='%(refname:lstrip=2)' refs/heads/
"""


class StepFailed(Exception):
    pass


@dataclass(frozen=True)
class Cache:
    ref: str  # the branch it was saved from: restored there and, from the default branch, anywhere
    key: str
    files: Path


@dataclass
class Repository:
    """The repository as GitHub holds it: a bare git repo, its settings and its caches."""

    origin: Path
    full_name: str
    default_branch: str
    variables: dict[str, str]
    secrets: dict[str, str]
    caches: list[Cache] = field(default_factory=list)  # oldest first


@dataclass(frozen=True)
class Event:
    """What triggers a run: its name, its ref and commit, and the payload (`github.event`)."""

    name: str
    ref: str
    sha: str
    payload: dict


@dataclass
class Job:
    result: str  # success, failure or skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.log)[-8000:]


@dataclass
class Run:
    """One workflow run: its repository, event and `github` context, artifacts and jobs."""

    repository: Repository
    event: Event
    github: dict
    artifacts: dict[str, Path] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)


class HostedRunner:
    """Runs workflows' jobs (see the module's docstring). Everything lives under `root`, which
    the runner user can reach (pytest's temporary directories are root's only)."""

    def __init__(self, root: Path, uv_cache: Path):
        self.root = root
        self.user = pwd.getpwnam(RUNNER)
        self.tools = root / "tools"  # on PATH before this machine's /usr/bin
        self.tools.mkdir()
        shutil.copy2(require_tool("uv"), self.tools / "uv")  # what setup-uv installs (root's own)
        self.uv_cache = root / "uv-cache"
        own_uv_cache(uv_cache, self.uv_cache, self.user.pw_uid, self.user.pw_gid)
        self.stores = root / "stores"  # artifacts and caches, as GitHub keeps them
        self.stores.mkdir()
        # Root's side of the repositories the runner user owns (git honours safe.directory in a
        # global or system config only).
        (root / "root.gitconfig").write_text("[safe]\n\tdirectory = *\n")
        self.root_git = {"GIT_CONFIG_GLOBAL": str(root / "root.gitconfig")}
        self.runs = 0

    def own(self, path: Path) -> None:
        chown_tree(path, self.user.pw_uid, self.user.pw_gid)

    def bare_repo(self, name: str) -> Path:
        """An empty bare repository the runner user can push to."""
        path = bare_repo(self.root / name)
        self.own(path)
        return path

    def repository(
        self, project: Path, full_name: str, variables: dict[str, str], secrets: dict[str, str]
    ) -> Repository:
        """`project`'s branches pushed to a new repository on "GitHub"."""
        origin = self.bare_repo(full_name.replace("/", "+") + ".git")
        self.git(project, "push", "--quiet", str(origin), "--all")
        self.own(origin)
        (self.tools / "gh").write_text(GH_API.replace("ORIGIN", shlex.quote(str(origin))))
        (self.tools / "gh").chmod(0o755)
        default = self.git(origin, "symbolic-ref", "--short", "HEAD")
        return Repository(origin, full_name, default, variables, secrets)

    def git(self, repo: Path, *args: str) -> str:
        """git as root, in the project or in a repository the runner user owns."""
        return run(["git", *args], repo, {**os.environ, **self.root_git}).stdout.strip()

    def run(self, repository: Repository, workflow: dict, event: Event) -> Run:
        """Every job of `workflow` whose `if:` holds, in the order its `needs:` allow."""
        self.runs += 1
        owner = repository.full_name.split("/")[0]
        github = {
            "event_name": event.name,
            "event": {"repository": {"default_branch": repository.default_branch}, **event.payload},
            "ref": event.ref,
            "ref_name": event.ref.removeprefix("refs/heads/").removeprefix("refs/tags/"),
            "head_ref": "",  # pull requests only, which this runner does not run
            "sha": event.sha,
            "repository": repository.full_name,
            "repository_owner": owner,
            "actor": owner,
            "run_id": str(1000 + self.runs),
            "token": "ghs_job_token",
        }
        workflow_run = Run(repository, event, github)
        pending = dict(workflow["jobs"])
        while pending:
            ready = [n for n, job in pending.items() if set(_needs(job)) <= set(workflow_run.jobs)]
            assert ready, f"jobs whose needs never run: {sorted(pending)}"
            for name in ready:
                job = pending.pop(name)
                workflow_run.jobs[name] = Machine(self, workflow_run, workflow, job).run(job)
        return workflow_run


class Machine:
    """One job's fresh machine: its workspace, home and temp dir (the runner user's), its
    contexts and environment, and what runs after its steps (cache saves)."""

    def __init__(self, runner: HostedRunner, workflow_run: Run, workflow: dict, job: dict):
        self.runner, self.workflow_run = runner, workflow_run
        needs = {n: workflow_run.jobs[n] for n in _needs(job)}
        self.context = {
            "github": workflow_run.github,
            "vars": workflow_run.repository.variables,
            "secrets": {
                **workflow_run.repository.secrets,
                "GITHUB_TOKEN": workflow_run.github["token"],
            },
            "needs": {n: {"result": j.result, "outputs": j.outputs} for n, j in needs.items()},
            "steps": {},
            "env": {},
        }
        self.failed = False
        needs_succeeded = all(j.result == "success" for j in needs.values())
        self.functions = {
            "success": lambda: not self.failed and needs_succeeded,
            "failure": lambda: self.failed,
            "always": lambda: True,
            "cancelled": lambda: False,
            "hashFiles": lambda *patterns: hash_files(self.workspace, patterns),
        }
        name = workflow_run.repository.full_name.split("/")[1]
        self.workspace = runner.root / "work" / name / name
        self.home, self.temp = runner.root / "home", runner.root / "temp"
        self.env = {
            "PATH": f"{runner.tools}:{SYSTEM_PATH}:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REPOSITORY": workflow_run.repository.full_name,
            "GITHUB_EVENT_NAME": workflow_run.event.name,
            "GITHUB_REF": workflow_run.event.ref,
            "GITHUB_REF_NAME": workflow_run.github["ref_name"],
            "GITHUB_SHA": workflow_run.event.sha,
            "GITHUB_ACTOR": workflow_run.github["actor"],
            "RUNNER_TEMP": str(self.temp),
        }
        for scope in (workflow.get("env"), job.get("env")):
            self.context["env"].update(self.rendered(scope))
        self.post: list[Callable[[], str]] = []
        self.log: list[str] = []

    def rendered(self, values: dict | None) -> dict[str, str]:
        return {k: gh_render(v, self.context, self.functions) for k, v in (values or {}).items()}

    def holds(self, test) -> bool:
        return gh_truthy(gh_eval(condition(test), self.context, self.functions))

    def run(self, job: dict) -> Job:
        if not self.holds(job.get("if")):
            return Job("skipped")
        for path in (self.workspace, self.home, self.temp):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.runner.own(self.runner.root / "work")
        for path in (self.home, self.temp):
            self.runner.own(path)
        for index, step in enumerate(job["steps"]):
            if not self.holds(step.get("if")):
                continue
            self.log.append(f"--- step {index}: {step.get('uses') or step['run'].splitlines()[0]}")
            try:
                outputs = self.step(step)
            except StepFailed as failure:
                self.log.append(f"FAILED: {failure}")
                self.failed, outputs = True, {}
            if step.get("id"):
                self.context["steps"][step["id"]] = {"outputs": outputs}
        if not self.failed:
            self.log += [save() for save in self.post]
        outputs = self.rendered(job.get("outputs"))
        return Job("failure" if self.failed else "success", outputs, self.log)

    def step(self, step: dict) -> dict[str, str]:
        given = self.rendered(step.get("with"))
        env = {**self.env, **self.context["env"], **self.rendered(step.get("env"))}
        action = step.get("uses", "").split("@")[0]
        actions = {
            "actions/checkout": self.checkout,
            "actions/setup-python": self.setup_python,
            "astral-sh/setup-uv": self.setup_uv,
            "actions/cache": self.cache,
            "actions/upload-artifact": self.upload_artifact,
            "actions/download-artifact": self.download_artifact,
        }
        if action:
            if action not in actions:
                raise StepFailed(f"{action}: not an action this runner knows")
            return actions[action](given, env) or {}
        script = gh_render(step["run"], self.context, self.functions)
        return self.script(script, env, self.workspace / step.get("working-directory", "."))

    def as_runner(self, command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
        user = self.runner.user
        setpriv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        result = subprocess.run(
            [*setpriv, *command],
            cwd=cwd or self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        output = result.stdout + result.stderr
        self.log.append(output)
        if result.returncode:
            raise StepFailed(f"{command[0]} exited {result.returncode}: {output[-3000:]}")
        return result.stdout

    def script(self, script: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
        path, output = self.temp / "step.sh", self.temp / "output"
        path.write_text(script)
        output.write_text("")
        for file in (path, output):
            self.runner.own(file)
        env = {**env, "GITHUB_OUTPUT": str(output)}
        self.as_runner(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], env, cwd)
        return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)

    def checkout(self, given: dict, env: dict) -> None:
        event, ref = self.workflow_run.event, given.get("ref", "")
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            branch, commit = "", ref
        elif ref:
            branch, commit = ref, f"refs/heads/{ref}"
        elif event.ref.startswith("refs/heads/"):
            branch, commit = self.workflow_run.github["ref_name"], event.sha
        else:
            branch, commit = "", event.sha
        fetched = f"refs/remotes/origin/{branch}" if branch else "refs/checkout"
        origin = f"file://{self.workflow_run.repository.origin}"
        for args in (["init", "--quiet"], ["remote", "add", "origin", origin]):
            self.as_runner(["git", *args], env)
        if str(given.get("fetch-depth", 1)) == "0":
            everything = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
            self.as_runner(["git", "fetch", "--quiet", "origin", *everything], env)
            fetched = fetched if branch else commit
        else:
            refspec = f"+{commit}:{fetched}"
            self.as_runner(["git", "fetch", "--quiet", "--depth=1", "origin", refspec], env)
        switch = ["-B", branch] if branch else ["--detach"]
        self.as_runner(["git", "checkout", "--quiet", "--force", *switch, fetched], env)

    def setup_python(self, given: dict, env: dict) -> None:
        version = given.get("python-version") or (
            (self.workspace / given["python-version-file"]).read_text().strip()
        )
        python = shutil.which(f"python{version}", path=SYSTEM_PATH)
        if not python:
            raise StepFailed(f"setup-python: no Python {version} on this machine ({SYSTEM_PATH})")
        for name in ("python", "python3", f"python{version}"):
            (self.runner.tools / name).unlink(missing_ok=True)
            (self.runner.tools / name).symlink_to(python)

    def setup_uv(self, given: dict, env: dict) -> None:
        installed = self.as_runner(["uv", "--version"], env).split()[1]
        if given.get("version") and given["version"] != installed:
            raise StepFailed(f"setup-uv: wants uv {given['version']}, this machine has {installed}")
        self.context["env"].update(
            {**UV_ON_THIS_MACHINE, "UV_CACHE_DIR": str(self.runner.uv_cache)}
        )

    def cache(self, given: dict, env: dict) -> dict[str, str]:
        repository, ref = self.workflow_run.repository, self.workflow_run.event.ref
        key, path = given["key"], self.workspace / given["path"].strip()
        restore_keys = [k.strip() for k in given.get("restore-keys", "").splitlines() if k.strip()]
        hit = None
        for scope in dict.fromkeys([ref, f"refs/heads/{repository.default_branch}"]):
            saved = [c for c in reversed(repository.caches) if c.ref == scope]
            exact = [c for c in saved if c.key == key]
            prefixed = [c for p in [key, *restore_keys] for c in saved if c.key.startswith(p)]
            hit = next(iter(exact + prefixed), None)
            if hit:
                shutil.copytree(hit.files, path, symlinks=True, dirs_exist_ok=True)
                self.runner.own(path)
                self.log.append(f"cache restored from key: {hit.key}")
                break

        def save() -> str:
            if hit and hit.key == key:
                return f"cache hit on {key}: not saved"
            if any(c.key == key and c.ref == ref for c in repository.caches):
                return f"cache {key} exists: not saved"  # keys are immutable
            if not path.exists():
                return f"cache {key}: {path} does not exist, not saved"
            files = self.runner.stores / f"cache-{len(repository.caches)}"
            shutil.copytree(path, files, symlinks=True)
            repository.caches.append(Cache(ref, key, files))
            return f"cache saved with key: {key}"

        self.post.append(save)
        return {"cache-hit": str(bool(hit and hit.key == key)).lower()}

    def upload_artifact(self, given: dict, env: dict) -> None:
        name = given.get("name", "artifact")
        if name in self.workflow_run.artifacts:
            raise StepFailed(f"upload-artifact: an artifact named {name!r} exists in this run")
        patterns = [line.strip() for line in given["path"].splitlines() if line.strip()]
        hidden = given.get("include-hidden-files", "false").lower() == "true"
        search_paths, files = [], []
        for pattern in patterns:
            search = _search_path(self.workspace, pattern)
            search_paths.append(search)
            for match in map(
                Path, glob.glob(str(self.workspace / pattern), recursive=True, include_hidden=True)
            ):
                found = [match] if match.is_file() else sorted(match.rglob("*"))
                files += [f for f in found if f.is_file() and (hidden or not _hidden(f, search))]
        files = list(dict.fromkeys(files))
        if not files:
            if given.get("if-no-files-found", "warn") == "error":
                raise StepFailed(f"upload-artifact: no files found for {patterns}")
            self.log.append(f"upload-artifact: no files found for {patterns}: nothing uploaded")
            return
        if len(search_paths) > 1:
            root = Path(os.path.commonpath(search_paths))
        elif files == search_paths:  # one file, named as it is
            root = files[0].parent
        else:
            root = search_paths[0]
        stored = self.runner.stores / f"run-{self.workflow_run.github['run_id']}-{name}"
        for file in files:
            (stored / file.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, stored / file.relative_to(root))
        self.workflow_run.artifacts[name] = stored

    def download_artifact(self, given: dict, env: dict) -> None:
        name = given["name"]
        if name not in self.workflow_run.artifacts:
            raise StepFailed(f"download-artifact: Artifact not found for name: {name}")
        target = self.workspace / given.get("path", ".")
        shutil.copytree(self.workflow_run.artifacts[name], target, dirs_exist_ok=True)
        self.runner.own(target)


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _search_path(workspace: Path, pattern: str) -> Path:
    """@actions/glob's search path of a pattern: its leading segments without a wildcard."""
    parts = []
    for part in pattern.rstrip("/").split("/"):
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return workspace.joinpath(*parts)


def _hidden(file: Path, search: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(search).parts)


def hash_files(workspace: Path, patterns) -> str:
    """hashFiles(): one SHA-256 over the SHA-256 of each matching file (sorted), '' if none."""
    regexes = [glob_regex(p) for p in patterns]
    matched = sorted(
        path
        for path in workspace.rglob("*")
        if path.is_file()
        and ".git" not in path.relative_to(workspace).parts
        and any(r.match(path.relative_to(workspace).as_posix()) for r in regexes)
    )
    if not matched:
        return ""
    total = hashlib.sha256()
    for path in matched:
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


@contextmanager
def hosted_runner(uv_cache: Path) -> Iterator[HostedRunner]:
    root = Path(tempfile.mkdtemp(prefix="hosted-runner-"))  # pytest's are root's only (0700)
    try:
        root.chmod(0o755)
        yield HostedRunner(root, uv_cache)
    finally:
        shutil.rmtree(root, ignore_errors=True)
