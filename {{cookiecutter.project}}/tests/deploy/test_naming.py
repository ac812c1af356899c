"""The branch -> environment name mapping (deploy/naming.py), property-tested: every derived
name is valid for any branch git accepts, deterministic, and collision-free."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy import naming

DEFAULT = "main"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# MLflow 3.17 (mlflow/utils/validation.py): `[\w-]*`, at most 255 characters, and neither
# `latest` (any case) nor `v<digits>`, which it reserves.
MLFLOW_ALIAS = re.compile(r"^[\w\-]{1,255}$")
MLFLOW_RESERVED = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)


# --- a strategy for branch names that git accepts (git check-ref-format --branch) -------------

FORBIDDEN = set(" ~^:?*[\\\x7f") | {chr(c) for c in range(0x20)}


def is_git_branch_name(name: str) -> bool:
    """The rules of `git check-ref-format` for refs/heads/<name>, plus those of `git branch`."""
    components = name.split("/")
    return (
        bool(name)
        and name not in ("@", "HEAD")
        and not name.startswith("-")
        and not name.endswith(".")
        and ".." not in name
        and "@{" not in name
        and not FORBIDDEN.intersection(name)
        and all(c and not c.startswith(".") and not c.endswith(".lock") for c in components)
    )


def _component(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=40)


_ascii = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./@+#!'\"$`;(){}"
)
_unicode = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="".join(sorted(FORBIDDEN))
)

branch_names = (
    st.lists(_component(st.one_of(_ascii, _unicode)), min_size=1, max_size=5)
    .map("/".join)
    .filter(is_git_branch_name)
)


def check(env: str) -> None:
    assert DNS_1035.match(env), env
    assert len(env) <= naming.MAX_ENV_LEN


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=1500, suppress_health_check=[HealthCheck.filter_too_much])
@given(branch_names)
def test_env_name_is_a_short_dns_label_and_deterministic(branch):
    env = naming.env_name(branch, DEFAULT)
    check(env)
    assert naming.env_name(branch, DEFAULT) == env
    assert len(naming.release_name("a" * naming.MAX_PROJECT_LEN, env)) <= naming.MAX_RELEASE_LEN
    if branch != DEFAULT:
        assert env != naming.PRODUCTION


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(branch_names, min_size=2, max_size=40, unique=True))
def test_different_branches_get_different_names(branches):
    envs = [naming.env_name(b, DEFAULT) for b in branches]
    assert len(set(envs)) == len(envs), dict(zip(branches, envs, strict=True))


@settings(max_examples=500, suppress_health_check=[HealthCheck.filter_too_much])
@given(branch_names)
def test_mlflow_alias_is_valid_for_every_env(branch):
    alias = naming.mlflow_alias(naming.env_name(branch, DEFAULT))
    assert MLFLOW_ALIAS.match(alias) and not MLFLOW_RESERVED.match(alias), alias


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(branch_names)
def test_strategy_produces_names_git_accepts(branch):
    """The strategy above is only worth something if git agrees with it."""
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], capture_output=True, check=False
    )
    assert result.returncode == 0, (branch, result.stderr)


# --- hand-picked cases --------------------------------------------------------------------------

NEAR_COLLISIONS = [
    "feat/a",
    "feat-a",
    "feat_a",
    "feat.a",
    "feat--a",
    "feat/a/",
    "Feat-a",
    "FEAT-A",
    "feat-A",
    "feature/" + "x" * 60,
    "feature/" + "x" * 60 + "y",
    "feature/" + "x" * 61,
    "feature/a-very-long-shared-prefix-1",
    "feature/a-very-long-shared-prefix-2",
    "production",
    "Production",
    "production-1",
    "prod/uction",
    "main",
    "Main",
    "main2",
    "latest",
    "v1",
    "V1",
    "café",
    "cafe",
    "cafè",
    "über/straße",
    "uber/strasse",
    "ünïcödé",
    "日本語",
    "中文",
    "😀",
    "😁",
    "_",
    "__",
    "+",
    "#",
    "@@",
    "1",
    "123",
    "1-fix",
    "b-1-fix",
    "b",
    "b-1",
    "x" * 28,
    "x" * 29,
    "a" * 200,
    "a" * 201,
]


def test_hand_picked_near_collisions_differ():
    branches = [b for b in NEAR_COLLISIONS if b != "feat/a/"]  # git refuses a trailing '/'
    assert all(is_git_branch_name(b) for b in branches)
    envs = {b: naming.env_name(b, DEFAULT) for b in branches}
    for env in envs.values():
        check(env)
    assert len(set(envs.values())) == len(envs), envs


def test_hashed_looking_names_cannot_collide_with_hashed_names():
    """`feat/a` becomes `feat-a-<hash>`; a branch literally named so must not take that name."""
    hashed = naming.env_name("feat/a", DEFAULT)
    assert naming.env_name(hashed, DEFAULT) != hashed


@pytest.mark.parametrize(
    ("branch", "env"),
    [
        ("main", "production"),
        ("fix-login", "fix-login"),
        ("feat/a", "feat-a-" + naming.branch_hash("feat/a")),
        ("Feat", "feat-" + naming.branch_hash("Feat")),
        ("production", "production-" + naming.branch_hash("production")),
        ("日本語", "b-" + naming.branch_hash("日本語")),
        ("123", "b-123-" + naming.branch_hash("123")),
    ],
)
def test_examples(branch, env):
    assert naming.env_name(branch, DEFAULT) == env


def test_default_branch_is_configurable():
    assert naming.env_name("trunk", "trunk") == "production"
    assert naming.env_name("main", "trunk") != "production"


def test_large_random_sample_has_no_collisions():
    rng = random.Random(20261122)
    alphabet = "abcXYZ019-_./éü日"
    branches = set()
    while len(branches) < 30000:
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        if is_git_branch_name(name):
            branches.add(name)
    envs = {naming.env_name(b, DEFAULT) for b in branches}
    assert len(envs) == len(branches)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("{{ cookiecutter.project }}", True),
        ("a", True),
        ("x" * 24, True),
        ("x" * 25, False),
        ("Breast", False),
        ("1model", False),
        ("model-", False),
        ("my_model", False),
        ("", False),
    ],
)
def test_validate_project_name(name, ok):
    problem = naming.validate_project_name(name)
    assert (problem is None) == ok, problem
    if not ok:
        assert "project" in problem


def test_the_env_name_cli_needs_only_the_standard_library() -> None:
    """CI names an environment before it installs anything (a teardown of a deleted branch)."""
    blocked = ("yaml", "pydantic", "jsonschema", "pandas", "sklearn", "mlflow")
    code = (
        "import runpy, sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"
        "sys.argv = ['deploy.gitops', 'env-name', '--', '--Feat/A']\n"
        "runpy.run_module('deploy.gitops', run_name='__main__', alter_sys=True)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == naming.env_name("--Feat/A", "main")
