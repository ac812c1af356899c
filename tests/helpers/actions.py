"""GitHub Actions as far as the generated workflows use it: the expression language, and a
hosted runner that runs a workflow's jobs the way GitHub does, one fresh machine per job.

A job gets what a job on an ubuntu-24.04 hosted runner gets, and nothing more:
- a fresh, empty workspace at the same path in every job (GITHUB_WORKSPACE), a fresh home, and
  the unprivileged user `nobody` for every step (the hosted runner's user is not root);
- only the repository's variables and secrets, and the runner's GITHUB_* variables;
- actions/checkout: a clone of the repository at the event's commit, on its branch (one commit
  deep unless fetch-depth is 0), or of `ref`;
- actions/setup-python, astral-sh/setup-uv: this machine's Debian Python of the project's version
  and uv at the pinned version (a different pin fails the step), with the uv cache restored;
- actions/cache: an immutable key; the exact key, else a key or restore-key prefix (newest
  first), from the run's branch, then the default branch; saved after a successful job only;
- actions/upload-artifact, download-artifact (v4): per run, unique names, files stored relative
  to the least common ancestor of the paths (a lone file: its directory), hidden files only with
  include-hidden-files;
- `run:` steps: bash -e -o pipefail, `${{ }}` rendered into the script, env from the workflow,
  the job and the step, GITHUB_OUTPUT; `if:` with success(), failure(), always().

Stood in for: GitHub's REST API (`gh api .../branches-where-head`, answered from the branch heads
of the repository), and downloads (uv runs offline from a copy of the session's uv cache).
Not modelled: concurrency groups, environments and their protection rules (tests/test_ci.py
checks those against GitHub's documented semantics), services and containers.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers.images import SYSTEM_PATH, chown_tree, own_uv_cache
from helpers.project import require_tool, run

RUNNER = "nobody"
# Where the runner differs from GitHub's: no downloads at run time, so uv stays offline on the
# restored cache and copies from it (its files are root's, and cannot be hard-linked).
UV_ON_THIS_MACHINE = {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
# The REST API calls the workflows make, answered from the repository (ORIGIN) as GitHub would.
GH_API = r"""#!/bin/sh
# gh, standing in for GitHub's REST API: GET /repos/{repo}/commits/{sha}/branches-where-head.
[ -n "$GH_TOKEN" ] || { echo "gh: no GH_TOKEN" >&2; exit 4; }
path=$3
case "$1 $2 $4 $5" in
  "api --paginate --jq .[].name") ;;
  *) echo "gh: not stood in for: $*" >&2; exit 1 ;;
esac
sha=${path#"repos/$GITHUB_REPOSITORY/commits/"}
[ "$sha" != "$path" ] && [ "${sha%/branches-where-head}" != "$sha" ] || { echo "gh: $path?" >&2; exit 1; }
exec git -C ORIGIN for-each-ref --points-at "${sha%/branches-where-head}"   --format='%(refname:lstrip=2)' refs/heads/
"""
# Root's side of the repositories the runner user owns.


# --- the expression language (the subset these workflows use) ----------------------------------
# docs.github.com "Evaluate expressions in workflows and actions": `||` and `&&` return an operand,
# `==` compares strings ignoring case and coerces mismatched types to numbers (null and '' are 0),
# startsWith/endsWith/contains ignore case; falsy are false, 0, '', null (and NaN).

_GH_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>\|\||&&|==|!=|[!(),.\[\]])"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _gh_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _GH_TOKEN.match(text, pos)
        assert match, f"cannot read {text[pos:]!r}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _gh_number(value):
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def gh_truthy(value) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _gh_equal(left, right) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return _gh_number(left) == _gh_number(right)


_GH_FUNCTIONS = {
    "startswith": lambda a, b: str(a or "").casefold().startswith(str(b or "").casefold()),
    "endswith": lambda a, b: str(a or "").casefold().endswith(str(b or "").casefold()),
    "contains": lambda a, b: str(b or "").casefold() in str(a or "").casefold(),
    "format": lambda f, *args: re.sub(r"\{(\d+)\}", lambda m: _gh_str(args[int(m[1])]), f),
}


def gh_eval(expression: str, context: dict, functions: dict | None = None):
    """The value of an expression (without `${{ }}`); `functions` adds the job's status and
    hashFiles functions to the built-in ones."""
    known = {**_GH_FUNCTIONS, **{name.lower(): f for name, f in (functions or {}).items()}}
    tokens = _gh_tokens(expression)
    pos = 0

    def peek(value=None):
        if pos < len(tokens) and (value is None or tokens[pos][1] == value):
            return tokens[pos]
        return None

    def take(value=None):
        nonlocal pos
        token = peek(value)
        assert token, f"expected {value!r} at {pos} in {expression!r}"
        pos += 1
        return token

    def primary():
        kind, text = take()
        if text == "(":
            value = either()
            take(")")
            return value
        if text == "!":
            return not gh_truthy(primary())
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if peek("("):
            take("(")
            args = []
            while not peek(")"):
                args.append(either())
                if peek(","):
                    take(",")
            take(")")
            return known[text.lower()](*args)
        value = context.get(text)
        while peek(".") or peek("["):
            if take()[1] == ".":
                key = take()[1]
            else:
                key = either()
                take("]")
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def comparison():
        left = primary()
        while peek("==") or peek("!="):
            op = take()[1]
            equal = _gh_equal(left, primary())
            left = equal if op == "==" else not equal
        return left

    def conjunction():
        left = comparison()
        while peek("&&"):
            take()
            right = comparison()
            left = right if gh_truthy(left) else left
        return left

    def either():
        left = conjunction()
        while peek("||"):
            take()
            right = conjunction()
            left = left if gh_truthy(left) else right
        return left

    value = either()
    assert pos == len(tokens), f"unread tokens in {expression!r}"
    return value


def _gh_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def gh_render(text, context: dict, functions: dict | None = None) -> str:
    """A workflow value with its `${{ }}` expressions evaluated, as GitHub passes it on."""
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: _gh_str(gh_eval(m[1], context, functions)), str(text)
    )


def glob_regex(pattern: str) -> re.Pattern:
    """@actions/glob, as hashFiles() uses it: `**` any directories, `*` within one."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


# --- a hosted runner -----------------------------------------------------------------------------


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
    head_ref: str = ""


@dataclass
class Job:
    result: str  # success, failure or skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.log)[-8000:]


@dataclass
class Run:
    """One workflow run: its contexts, its artifacts and its jobs so far."""

    repository: Repository
    event: Event
    github: dict
    artifacts: dict[str, Path] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)


class HostedRunner:
    """Runs workflow jobs as an ubuntu-24.04 hosted runner would (see the module's docstring).
    Everything lives under `root`, which the runner user can reach (pytest's temporary
    directories are root's only)."""

    def __init__(self, root: Path, uv_cache: Path):
        self.root = root
        self.user = pwd.getpwnam(RUNNER)
        self.tools = root / "tools"
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
        self._runs = 0

    # -- the repository side ------------------------------------------------------------------

    def bare_repo(self, name: str) -> Path:
        """An empty bare repository the runner user can push to (a GitOps repo, an origin)."""
        path = self.root / name
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
        )
        chown_tree(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def repository(
        self, project: Path, full_name: str, variables: dict[str, str], secrets: dict[str, str]
    ) -> Repository:
        """`project`'s branches pushed to a new repository on "GitHub"."""
        origin = self.bare_repo(full_name.replace("/", "+") + ".git")
        self.git(project, "push", "--quiet", str(origin), "--all")
        chown_tree(origin, self.user.pw_uid, self.user.pw_gid)
        default = self.git(origin, "symbolic-ref", "--short", "HEAD")
        (self.tools / "gh").write_text(GH_API.replace("ORIGIN", shlex.quote(str(origin))))
        (self.tools / "gh").chmod(0o755)
        return Repository(origin, full_name, default, variables, secrets)

    def git(self, repo: Path, *args: str) -> str:
        """git as root, in the repository's or the runner's repositories."""
        return run(["git", *args], repo, {**os.environ, **self.root_git}).stdout.strip()

    # -- runs -----------------------------------------------------------------------------------

    def run(self, repository: Repository, workflow: dict, event: Event) -> Run:
        """Every job of `workflow` whose `if:` holds, in the order its `needs:` allow."""
        self._runs += 1
        ref_name = event.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        github = {
            "event_name": event.name,
            "event": {"repository": {"default_branch": repository.default_branch}, **event.payload},
            "ref": event.ref,
            "ref_name": ref_name,
            "head_ref": event.head_ref,
            "sha": event.sha,
            "repository": repository.full_name,
            "repository_owner": repository.full_name.split("/")[0],
            "actor": repository.full_name.split("/")[0],
            "run_id": str(1000 + self._runs),
            "token": "ghs_job_token",
        }
        run = Run(repository, event, github)
        pending = dict(workflow["jobs"])
        while pending:
            ready = [
                name
                for name, job in pending.items()
                if all(need in run.jobs for need in _needs(job))
            ]
            assert ready, f"jobs whose needs never run: {sorted(pending)}"
            for name in ready:
                run.jobs[name] = self._job(run, workflow, pending.pop(name))
        return run

    def _job(self, run: Run, workflow: dict, job: dict) -> Job:
        needs = {
            n: {"result": run.jobs[n].result, "outputs": run.jobs[n].outputs} for n in _needs(job)
        }
        context = {
            "github": run.github,
            "vars": run.repository.variables,
            "secrets": {**run.repository.secrets, "GITHUB_TOKEN": run.github["token"]},
            "needs": needs,
            "steps": {},
        }
        status = {"failed": False}
        needs_ok = all(n["result"] == "success" for n in needs.values())
        functions = {
            "success": lambda: not status["failed"] and needs_ok,
            "failure": lambda: status["failed"],
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        if not gh_truthy(gh_eval(_condition(job.get("if")), context, functions)):
            return Job("skipped")

        workspace = self.root / "work" / run.repository.full_name.split("/")[1]
        workspace = workspace / workspace.name
        home, temp = self.root / "home", self.root / "temp"
        for path in (workspace, home, temp):  # a fresh machine for every job
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            chown_tree(path, self.user.pw_uid, self.user.pw_gid)
        for parent in workspace.parents:
            if parent == self.root:
                break
            os.chown(parent, self.user.pw_uid, self.user.pw_gid)
        functions["hashFiles"] = lambda *patterns: hash_files(workspace, patterns)
        env = {
            "PATH": f"{self.tools}:{SYSTEM_PATH}:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_REPOSITORY": run.repository.full_name,
            "GITHUB_EVENT_NAME": run.event.name,
            "GITHUB_REF": run.event.ref,
            "GITHUB_REF_NAME": run.github["ref_name"],
            "GITHUB_HEAD_REF": run.event.head_ref,
            "GITHUB_SHA": run.event.sha,
            "GITHUB_ACTOR": run.github["actor"],
            "RUNNER_TEMP": str(temp),
        }
        context["env"] = {}
        for scope in (workflow.get("env"), job.get("env")):
            context["env"].update(
                {k: gh_render(v, context, functions) for k, v in (scope or {}).items()}
            )
        result = Job("success")
        post: list = []  # cache saves, after the job's steps
        for index, step in enumerate(job["steps"]):
            if not gh_truthy(gh_eval(_condition(step.get("if")), context, functions)):
                continue
            name = step.get("uses") or step["run"].splitlines()[0]
            result.log.append(f"--- step {index}: {name}")
            try:
                outputs = self._step(
                    run,
                    step,
                    context,
                    functions,
                    {**env, **context["env"]},
                    workspace,
                    temp,
                    result,
                    post,
                )
            except StepFailed as failure:
                result.log.append(f"FAILED: {failure}")
                status["failed"] = True
                outputs = {}
            if step.get("id"):
                context["steps"][step["id"]] = {"outputs": outputs}
        if status["failed"]:
            result.result = "failure"
        else:
            for save in post:
                result.log.append(save())
        result.outputs = {
            k: gh_render(v, context, functions) for k, v in (job.get("outputs") or {}).items()
        }
        return result

    def _step(self, run, step, context, functions, env, workspace, temp, job, post) -> dict:
        given = {k: gh_render(v, context, functions) for k, v in (step.get("with") or {}).items()}
        env = {
            **env,
            **{k: gh_render(v, context, functions) for k, v in (step.get("env") or {}).items()},
        }
        uses = step.get("uses", "")
        action = uses.split("@")[0]
        if action == "actions/checkout":
            self._checkout(run, given, workspace, env, job)
        elif action == "actions/setup-python":
            self._setup_python(given, workspace)
        elif action == "astral-sh/setup-uv":
            self._setup_uv(given, env, context)
        elif action == "actions/cache":
            return self._cache(run, given, workspace, job, post)
        elif action == "actions/upload-artifact":
            self._upload(run, given, workspace, job)
        elif action == "actions/download-artifact":
            self._download(run, given, workspace)
        elif uses:
            raise StepFailed(f"{uses}: not an action this runner knows")
        else:
            return self._script(
                gh_render(step["run"], context, functions),
                env,
                workspace / step.get("working-directory", "."),
                temp,
                job,
            )
        return {}

    def _as_runner(self, command: list[str], env: dict[str, str], cwd: Path, job: Job) -> str:
        user = [f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups"]
        result = subprocess.run(
            ["setpriv", *user, *command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        job.log.append(result.stdout + result.stderr)
        if result.returncode:
            raise StepFailed(f"exit {result.returncode}: {(result.stdout + result.stderr)[-3000:]}")
        return result.stdout

    def _script(self, script: str, env: dict[str, str], cwd: Path, temp: Path, job: Job) -> dict:
        path, output = temp / "step.sh", temp / "output"
        path.write_text(script)
        output.write_text("")
        for file in (path, output):
            os.chown(file, self.user.pw_uid, self.user.pw_gid)
        env = {**env, "GITHUB_OUTPUT": str(output)}
        self._as_runner(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], env, cwd, job
        )
        return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)

    def _checkout(self, run: Run, given: dict, workspace: Path, env: dict, job: Job) -> None:
        """actions/checkout: `ref` (a branch; a commit is checked out detached), else the event's
        commit on its branch, with `git checkout -B <branch> refs/remotes/origin/<branch>`, which
        records the branch's upstream in .git/config; one commit deep unless fetch-depth is 0; no
        credentials kept (persist-credentials: false)."""
        ref = given.get("ref", "")
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            branch, commit = "", ref
        elif ref:
            branch, commit = ref, f"refs/heads/{ref}"
        elif run.event.ref.startswith("refs/heads/"):
            branch, commit = run.github["ref_name"], run.event.sha
        else:
            branch, commit = "", run.event.sha
        fetched = f"refs/remotes/origin/{branch}" if branch else "refs/checkout"

        def git(*args: str) -> None:
            self._as_runner(["git", *args], env, workspace, job)

        git("init", "--quiet")
        git("remote", "add", "origin", f"file://{run.repository.origin}")
        if str(given.get("fetch-depth", 1)) == "0":
            git(
                "fetch",
                "--quiet",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            )
            fetched = fetched if branch else commit
        else:
            git("fetch", "--quiet", "--depth=1", "origin", f"+{commit}:{fetched}")
        if branch:
            git("checkout", "--quiet", "--force", "-B", branch, fetched)
        else:
            git("checkout", "--quiet", "--force", "--detach", fetched)

    def _setup_python(self, given: dict, workspace: Path) -> None:
        version = (
            given.get("python-version")
            or (workspace / given["python-version-file"]).read_text().strip()
        )
        python = shutil.which(f"python{version}", path=SYSTEM_PATH)
        if not python:
            raise StepFailed(f"setup-python: no Python {version} on this machine ({SYSTEM_PATH})")
        for name in ("python", "python3", f"python{version}"):
            (self.tools / name).unlink(missing_ok=True)
            (self.tools / name).symlink_to(python)

    def _setup_uv(self, given: dict, env: dict, context: dict) -> None:
        """setup-uv installs uv `version`; its cache is this machine's, so that uv runs offline."""
        installed = subprocess.run(
            [str(self.tools / "uv"), "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        if given.get("version") and given["version"] != installed:
            raise StepFailed(f"setup-uv: wants uv {given['version']}, this machine has {installed}")
        context["env"].update(UV_ON_THIS_MACHINE | {"UV_CACHE_DIR": str(self.uv_cache)})

    def _cache(self, run: Run, given: dict, workspace: Path, job: Job, post: list) -> dict:
        """actions/cache: the exact key, else a key or restore-key prefix (newest first), from
        the run's branch, then the default branch; a new key is saved once the job succeeded."""
        key, path = given["key"], given["path"].strip()
        prefixes = [
            key,
            *(line.strip() for line in given.get("restore-keys", "").splitlines() if line.strip()),
        ]
        scopes = [run.event.ref, f"refs/heads/{run.repository.default_branch}"]
        hit = None
        for scope in dict.fromkeys(scopes):
            saved = [c for c in reversed(run.repository.caches) if c.ref == scope]
            hit = next((c for c in saved if c.key == key), None) or next(
                (c for prefix in prefixes for c in saved if c.key.startswith(prefix)), None
            )
            if hit:
                break
        if hit:
            shutil.copytree(hit.files, workspace / path, symlinks=True, dirs_exist_ok=True)
            chown_tree(workspace / path, self.user.pw_uid, self.user.pw_gid)
            job.log.append(f"cache restored from key: {hit.key}")
        exact = bool(hit and hit.key == key)

        def save() -> str:
            if exact:
                return f"cache hit on {key}: not saved"
            if any(c.key == key and c.ref == run.event.ref for c in run.repository.caches):
                return f"cache {key} exists: not saved"  # keys are immutable
            if not (workspace / path).exists():
                return f"cache {key}: {path} does not exist, not saved"
            files = self.stores / f"cache-{len(run.repository.caches)}"
            shutil.copytree(workspace / path, files, symlinks=True)
            run.repository.caches.append(Cache(run.event.ref, key, files))
            return f"cache saved with key: {key}"

        post.append(save)
        return {"cache-hit": str(exact).lower()}

    def _upload(self, run: Run, given: dict, workspace: Path, job: Job) -> None:
        """upload-artifact v4: the files the paths match, relative to the paths' least common
        ancestor (a single file: its directory); hidden files only with include-hidden-files."""
        name = given.get("name", "artifact")
        if name in run.artifacts:
            raise StepFailed(f"upload-artifact: an artifact named {name!r} exists in this run")
        patterns = [line.strip() for line in given["path"].splitlines() if line.strip()]
        hidden = str(given.get("include-hidden-files", "false")).lower() == "true"
        search_paths, files = [], []
        for pattern in patterns:
            search = _search_path(workspace, pattern)
            search_paths.append(search)
            for match in sorted(
                glob.glob(str(workspace / pattern), recursive=True, include_hidden=True)
            ):
                found = [Path(match)] if Path(match).is_file() else sorted(Path(match).rglob("*"))
                files += [
                    f
                    for f in found
                    if f.is_file() and (hidden or not _hidden(f.relative_to(search)))
                ]
        files = list(dict.fromkeys(files))
        if not files:
            if given.get("if-no-files-found", "warn") == "error":
                raise StepFailed(f"upload-artifact: no files found for {patterns}")
            job.log.append(f"upload-artifact: no files found for {patterns}: nothing uploaded")
            return
        if len(search_paths) > 1:
            root = Path(os.path.commonpath(search_paths))
        elif len(files) == 1 and files[0] == search_paths[0]:
            root = files[0].parent
        else:
            root = search_paths[0]
        stored = self.stores / f"run-{run.github['run_id']}-{name}"
        for file in files:
            (stored / file.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, stored / file.relative_to(root), follow_symlinks=True)
        run.artifacts[name] = stored

    def _download(self, run: Run, given: dict, workspace: Path) -> None:
        name = given["name"]
        if name not in run.artifacts:
            raise StepFailed(f"download-artifact: Artifact not found for name: {name}")
        target = workspace / given.get("path", ".")
        shutil.copytree(run.artifacts[name], target, dirs_exist_ok=True)
        chown_tree(target, self.user.pw_uid, self.user.pw_gid)


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _condition(text) -> str:
    """A job's or step's `if:` as GitHub evaluates it: success() unless a status function is
    named."""
    if text is None:
        return "success()"
    expression = str(text).strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", expression):
        expression = f"success() && ({expression})"
    return expression


def _search_path(workspace: Path, pattern: str) -> Path:
    """@actions/glob's search path of a pattern: its leading segments without a wildcard."""
    parts = []
    for part in pattern.rstrip("/").split("/"):
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return workspace.joinpath(*parts)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


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
