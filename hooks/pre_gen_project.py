"""Validate the cookiecutter inputs before anything is written; do nothing else.

On bad input: one line naming the field, the value and the rule, and exit 1. Cookiecutter then
removes the project directory, so nothing is left behind.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

# The inputs arrive as one JSON string literal, so no input is ever read as Python code.
CONTEXT: dict = json.loads({{ cookiecutter | jsonify | jsonify }})


def template_dir() -> Path:
    """The template checkout. cookiecutter names it in `_repo_dir` (relative to where it was
    started, the shell's PWD, not to this hook, which runs inside the new project directory);
    cruft does not, but cookiecutter and cruft both run hooks from inside the template."""
    if "_repo_dir" in CONTEXT:
        return Path(os.environ.get("PWD", ".")) / CONTEXT["_repo_dir"]
    return Path(f"/proc/{os.getppid()}/cwd").resolve()


# The project-name rule lives with the naming function the deployments use (one source of truth).
sys.path.insert(0, str(template_dir() / "{% raw %}{{cookiecutter.project}}{% endraw %}"))
from deploy.naming import validate_project_name  # noqa: E402

# The options with a list of choices, as cookiecutter.json offers them (one source of truth).
OPTIONS = json.loads((template_dir() / "cookiecutter.json").read_text(encoding="utf-8"))
CHOICES = {field: choices for field, choices in OPTIONS.items() if isinstance(choices, list)}
# Top-level modules of the project's dependencies (and of its own delivery toolkit, deploy).
DEPENDENCY_MODULES = {
    "bentoml", "deploy", "dvc", "mlflow", "numpy", "pandas", "scipy", "sklearn", "yaml",
    "pydantic", "fastapi", "starlette", "uvicorn", "pytest", "hypothesis", "joblib", "git",
}
TRACKING_SCHEMES = {"sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks"}
REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
DNS_NAME = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
SCP_LIKE_GIT = re.compile(r"^[\w.-]+@[\w.-]+:[\w./~-]+$")
FREE_TEXT = re.compile(r'^[^"\\\x00-\x1f\x7f]*$')


def check_free_text(field: str) -> str | None:
    if not FREE_TEXT.match(CONTEXT[field]):
        return "must be one line without double quotes or backslashes"
    return None


def check_choice(field: str) -> str | None:
    if CONTEXT[field] not in CHOICES[field]:
        return f"must be one of {', '.join(CHOICES[field])}"
    return None


def check_package() -> str | None:
    name = CONTEXT["__package"]
    if not name.isidentifier():
        return "must be a Python identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "must not be a Python keyword"
    if name in sys.stdlib_module_names:
        return "must not shadow a standard-library module"
    if name in DEPENDENCY_MODULES:
        return "must not shadow a module the project depends on"
    return None


def check_branch() -> str | None:
    name = CONTEXT["default_branch"]
    # The rules of `git check-ref-format --branch`.
    bad = (
        not name
        or name.startswith(("-", "/", "."))
        or name.endswith(("/", ".", ".lock"))
        or ".." in name
        or "//" in name
        or "@{" in name
        or name == "@"
        or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name)
        or any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))
    )
    return "must be a valid git branch name" if bad else None


def check_tracking_uri() -> str | None:
    uri = CONTEXT["mlflow_tracking_uri"]
    parsed = urlparse(uri)
    if parsed.scheme.split("+")[0] not in TRACKING_SCHEMES:
        return f"must be a URI with one of the schemes {', '.join(sorted(TRACKING_SCHEMES))}"
    if parsed.scheme in ("http", "https") and not parsed.netloc:
        return "must name a host, e.g. https://mlflow.example.com"
    if parsed.scheme == "sqlite" and not uri.startswith("sqlite:///"):
        return "must look like sqlite:///relative/path.db or sqlite:////absolute/path.db"
    return None


def check_registry() -> str | None:
    if not REGISTRY.match(CONTEXT["image_registry"]):
        return "must be host[:port][/path] in lower case, e.g. registry.example.com/team"
    return None


def check_gitops_repo() -> str | None:
    repo = CONTEXT["gitops_repo"]
    if not repo or any(c.isspace() for c in repo):
        return "must be a local path or a git URL without spaces"
    parsed = urlparse(repo)
    if parsed.scheme in ("http", "https", "ssh", "git", "file"):
        return None if parsed.netloc or parsed.scheme == "file" else "URL must name a host"
    if parsed.scheme and len(parsed.scheme) > 1 and not SCP_LIKE_GIT.match(repo):
        return "must be https://, ssh://, git@host:path, file:// or a local path"
    return None


def check_preview_domain() -> str | None:
    if not DNS_NAME.match(CONTEXT["preview_domain"]):
        return "must be a lower-case DNS name such as preview.example.com"
    return None


CHECKS = {
    "project_name": lambda: check_free_text("project_name"),
    "project": lambda: validate_project_name(CONTEXT["project"]),
    "__package": check_package,
    "description": lambda: check_free_text("description"),
    "author": lambda: check_free_text("author"),
    **{field: lambda field=field: check_choice(field) for field in CHOICES},
    "default_branch": check_branch,
    "mlflow_tracking_uri": check_tracking_uri,
    "image_registry": check_registry,
    "gitops_repo": check_gitops_repo,
    "preview_domain": check_preview_domain,
}


def first_error() -> str | None:
    """The first invalid field as one line (field, value, rule); later fields may derive from it."""
    for field, check in CHECKS.items():
        rule = check()
        if rule:
            return f"ERROR: {field}={CONTEXT[field]!r}: {rule}"
    return None


def main() -> int:
    error = first_error()
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
