"""Change the GitOps repo safely: a private temporary clone, one commit, push with retries.

Many pipelines write to the GitOps repo at once. Each change is a function that edits a work
tree; on a rejected push we fetch the new tip, apply the function again on top of it (a rebase
that cannot conflict, because the function recomputes its edit) and retry after a jittered
backoff. A change that leaves the tree identical makes no commit.
"""

from __future__ import annotations

import base64
import functools
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

from ..urls import is_remote, redact, scrub

# Under heavy contention (dozens of pipelines pushing at once) a writer may lose many rounds;
# the backoff grows so that late rounds spread writers over several seconds.
MAX_ATTEMPTS = 30
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
BOT = {"name": "gitops-deploy", "email": "gitops-deploy@localhost"}
# How git says the server refused (or had to ask for) the credentials.
AUTH_FAILURES = (
    "authentication failed",
    "could not read username",
    "returned error: 401",
    "returned error: 403",
)


class GitError(ProjectError):
    """The GitOps repo refused or failed a git operation (the message is free of credentials)."""


@dataclass
class Outcome:
    committed: bool
    attempts: int  # pushes tried; attempts - 1 were rejected and retried
    revision: str | None  # the branch's commit holding the change (None: the branch is empty)


def gitops_branch() -> str:
    return os.environ.get("GITOPS_BRANCH", "main")  # the branch Argo CD watches


def _basic_auth() -> str | None:
    """The Authorization header value for HTTPS remotes, from GITOPS_TOKEN (and GITOPS_USER)."""
    token = os.environ.get("GITOPS_TOKEN")
    if not token:
        return None
    user = os.environ.get("GITOPS_USER") or "oauth2"  # CI may pass an unset variable as ""
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def _git_env(location: str) -> dict[str, str]:
    """Environment for git: bot identity, no prompts, and the token as an HTTP header.

    The token travels only in this process environment (GIT_CONFIG_* entries), so it is never
    on a command line, in a file, or in the remote URL of any git config.
    """
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    for role in ("AUTHOR", "COMMITTER"):
        env.setdefault(f"GIT_{role}_NAME", BOT["name"])
        env.setdefault(f"GIT_{role}_EMAIL", BOT["email"])
    basic = _basic_auth()
    if basic and location.startswith("https://"):
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
        env[f"GIT_CONFIG_KEY_{count}"] = "http.extraHeader"
        env[f"GIT_CONFIG_VALUE_{count}"] = f"Authorization: {basic}"
        env["GIT_CONFIG_COUNT"] = str(count + 1)
    return env


def rejected(stderr: str) -> bool:
    """A push refused because the branch moved meanwhile (another writer won the race)."""
    return ("[rejected]" in stderr or "[remote rejected]" in stderr) and "declined" not in stderr


def cause(stderr: str) -> str:
    """Why git could not talk to the remote, in one line: git's fatal/error line without the
    quoted URL, or what to fix for the failures a team meets first (token, CA)."""
    lowered = stderr.lower()
    if any(sign in lowered for sign in AUTH_FAILURES):
        return "authentication failed: check GITOPS_TOKEN (and GITOPS_USER, default oauth2)"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next(
        (x for x in lines if x.startswith(("fatal:", "error:"))), lines[-1] if lines else ""
    )
    line = re.sub(r"^(fatal|error):\s*", "", line)
    line = re.sub(r"^unable to access '[^']*':\s*", "", line)
    if "certificate" in lowered or "ssl ca" in lowered:
        return f"{line} (a private CA? set GIT_SSL_CAINFO to its certificate bundle)"
    return line or "git failed"


def ensure_local_repo(location: str) -> None:
    """Create the embedded default GitOps repo (a local bare repo) on first use."""
    if is_remote(location) or Path(location).exists():
        return
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", location],
        check=True,
    )
    print(f"created the local GitOps repo {location}", file=sys.stderr)


class Clone:
    """A temporary, shallow working copy of one branch of the GitOps repo."""

    def __init__(self, location: str, branch: str, workdir: Path, history: bool = False):
        self.location = location
        self.branch = branch
        self.dir = workdir
        self.env = _git_env(location)
        self.depth = [] if history else ["--depth=1"]

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args], cwd=self.dir, env=self.env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise GitError(f"git {args[0]} failed: {self.scrub(result.stderr.strip())}")
        return result

    def scrub(self, text: str) -> str:
        """Git's message without credentials, whether they came in the URL or the token."""
        text = text.replace(self.location, redact(self.location))
        return scrub(text, os.environ.get("GITOPS_TOKEN"), _basic_auth())

    def unreachable(self, result: subprocess.CompletedProcess[str]) -> GitError:
        """The one-line failure of a command that talks to the GitOps repo."""
        return GitError(f"GitOps repo {redact(self.location)}: {cause(self.scrub(result.stderr))}")

    def init(self) -> None:
        # No remote is configured: the location is passed to each fetch and push, so no URL
        # (and no credential in one) is ever written into a git config.
        self.git("init", "--quiet")

    def sync(self) -> None:
        """Reset the work tree to the remote tip (or to an empty tree if the branch is new)."""
        fetch = ("fetch", "--quiet", *self.depth, "--", self.location, self.branch)
        if self.git(*fetch, check=False).returncode != 0:
            if not self._remote_has_branch():
                self.git("checkout", "--quiet", "--orphan", f"empty-{time.monotonic_ns()}")
                self.git("rm", "-r", "--quiet", "--force", "--ignore-unmatch", ".")
                self.git("clean", "--quiet", "-fdx")
                return
            self.git(*fetch)  # another writer created the branch in the meantime
        # Everything a previous attempt wrote was committed, so a forced checkout is clean.
        self.git("checkout", "--quiet", "--force", "-B", "work", "FETCH_HEAD")

    def _remote_has_branch(self) -> bool:
        ref = f"refs/heads/{self.branch}"
        heads = self.git("ls-remote", "--heads", "--", self.location, ref, check=False)
        if heads.returncode != 0:
            raise self.unreachable(heads)
        return bool(heads.stdout.strip())

    def head(self) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False)
        return result.stdout.strip() or None

    def stage(self) -> bool:
        """Stage every change; False when the tree is identical to the tip."""
        self.git("add", "--all")
        return self.git("diff", "--cached", "--quiet", check=False).returncode != 0

    def commit_and_push(self, message: str) -> bool:
        """Commit the staged change; False when the push was rejected (someone pushed first)."""
        self.git("commit", "--quiet", "--no-verify", "-m", message)
        target = f"HEAD:refs/heads/{self.branch}"
        pushed = self.git(
            "push", "--quiet", "--no-verify", "--", self.location, target, check=False
        )
        if pushed.returncode != 0 and not rejected(pushed.stderr):
            raise self.unreachable(pushed)
        return pushed.returncode == 0


def _backoff(attempt: int) -> float:
    """Full jitter: concurrent writers spread out instead of colliding again in lockstep."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def transact(location: str, change: Callable[[Path], str | None], history: bool = False) -> Outcome:
    """Apply `change` to a fresh clone of the GitOps branch and push it; retry on rejection.

    `change(worktree)` edits files and returns the commit message, or None for "nothing to do".
    It runs again after every rejected push, on top of the new remote tip. With `history`, the
    clone has the branch's whole history (a rollback reads earlier deploys); else one commit.
    """
    with tempfile.TemporaryDirectory(prefix="gitops-") as tmp:
        clone = Clone(location, gitops_branch(), Path(tmp), history)
        clone.init()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            clone.sync()
            message = change(clone.dir)
            if message is None or not clone.stage():
                return Outcome(committed=False, attempts=attempt - 1, revision=clone.head())
            if clone.commit_and_push(message):
                return Outcome(committed=True, attempts=attempt, revision=clone.head())
            time.sleep(_backoff(attempt))
    raise GitError(f"push to {redact(location)} still rejected after {MAX_ATTEMPTS} attempts")


@functools.cache  # a fact about two commits: one fetch per revision a check polls
def includes(location: str, revision: str, commit: str) -> bool:
    """Whether `revision` of the GitOps branch is `commit` or came after it (False too when the
    branch does not hold `revision`). Fetches commits only, where the server can filter."""
    if revision == commit:
        return True
    with tempfile.TemporaryDirectory(prefix="gitops-") as tmp:
        clone = Clone(location, gitops_branch(), Path(tmp), history=True)
        clone.init()
        fetch = ("fetch", "--quiet", "--filter=tree:0", "--", location, clone.branch)
        fetched = clone.git(*fetch, check=False)
        if fetched.returncode != 0:
            raise clone.unreachable(fetched)
        answer = clone.git("merge-base", "--is-ancestor", commit, revision, check=False)
    return answer.returncode == 0
