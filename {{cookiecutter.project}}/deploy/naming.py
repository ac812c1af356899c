"""The one mapping from git branch names to environment names (and the names derived from them).

Git allows branch names that Kubernetes, Helm and DNS reject, so every derived name (namespace,
Helm release, Argo CD Application, Service, host label, MLflow alias) starts from `env_name()`.
Standard library only: the cookiecutter pre-generation hook imports `validate_project_name`.
"""

from __future__ import annotations

import hashlib
import re

# `<project>-<env>` is the namespace, the Argo CD Application and the Helm release name, and Helm
# caps release names at 53 characters: 24 + 1 + 28 = 53.
MAX_PROJECT_LEN = 24
MAX_ENV_LEN = 28
MAX_RELEASE_LEN = 53
PRODUCTION = "production"
HASH_LEN = 8

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# A name of this shape could be the output of hashing another branch, so an unchanged branch name
# that looks like it gets hashed too; that keeps hashed and unhashed names disjoint. (Built by
# concatenation: a double brace in this file would be taken for a cookiecutter variable.)
_HASHED_SHAPE = re.compile("-[0-9a-f]{" + str(HASH_LEN) + "}$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Prefix for names that do not start with a letter (or slug to nothing): DNS-1035 needs a letter.
_LETTER_PREFIX = "b"


def validate_project_name(name: str) -> str | None:
    """Why `name` cannot be a project name, or None when it can."""
    if not DNS_1035.match(name):
        return (
            f"project '{name}' must be a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    if len(name) > MAX_PROJECT_LEN:
        return f"project '{name}' is {len(name)} characters long; the limit is {MAX_PROJECT_LEN}"
    return None


def branch_hash(branch: str) -> str:
    """Short, stable fingerprint of the full branch name (case and punctuation included)."""
    return hashlib.sha256(branch.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_LEN]


def _slug(branch: str) -> str:
    """Lowercase ASCII letters and digits, every other run of characters becomes one '-'."""
    slug = _NOT_SLUG.sub("-", branch.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = f"{_LETTER_PREFIX}-{slug}".rstrip("-")
    return slug


def env_name(branch: str, default_branch: str) -> str:
    """The environment name of `branch`: a DNS-1035 label of at most MAX_ENV_LEN characters.

    The default branch is `production`. Any other branch keeps its name when that name is already
    a valid, short, unreserved label; otherwise it is slugged, cut to fit and suffixed with a hash
    of the full branch name, so `feat/a`, `feat-a` and `Feat-A` get three different names.
    """
    if branch == default_branch:
        return PRODUCTION
    slug = _slug(branch)
    unchanged = slug == branch and len(slug) <= MAX_ENV_LEN
    if unchanged and slug != PRODUCTION and not _HASHED_SHAPE.search(slug):
        return slug
    stem = slug[: MAX_ENV_LEN - HASH_LEN - 1].rstrip("-")
    return f"{stem}-{branch_hash(branch)}"


def release_name(project: str, env: str) -> str:
    """Namespace, Helm release and Argo CD Application name of one environment."""
    return f"{project}-{env}"


def preview_host(project: str, env: str, domain: str) -> str:
    """Host name of an environment; its first label is the release name (<= 53 < 63)."""
    return f"{release_name(project, env)}.{domain}"


def mlflow_alias(env: str) -> str:
    """The MLflow registered-model alias that points at the model version deployed in `env`.

    MLflow 3 accepts aliases matching `[\\w-]+` up to 255 characters, except `latest` (any case)
    and `v<digits>`, which it reserves. Branches can be named `latest` or `v2`, so every preview
    alias gets the `env-` prefix; production keeps the conventional `production` alias, which no
    prefixed alias can equal.
    """
    return PRODUCTION if env == PRODUCTION else f"env-{env}"
