"""The layout's two rules. The model package (src/) never imports the delivery toolkit (deploy/),
so it stays yours to change. Each DVC stage depends on every module of the package it runs, so
a change to one retrains exactly what it affects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "{{ cookiecutter.__package }}"
TOOLKIT = "deploy"


def module_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved; for
    `from a import b`, both `a` and `a.b`, since b may be a submodule)."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *filter(None, [node.module])])
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def source_of(module: str) -> Path | None:
    """The file of a module of the package, if it is one."""
    path = SRC.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(module: str) -> set[Path]:
    """The package's files a module runs: itself, what it imports, their packages' __init__."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            path = source_of(".".join(parts[:depth]))
            if path and path not in seen:
                seen.add(path)
                pending += [n for n in imported(path) if n.split(".")[0] == PACKAGE]
    return seen


MODEL_FILES = sorted((SRC / PACKAGE).rglob("*.py"))


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_the_model_package_never_imports_the_toolkit(path: Path) -> None:
    wrong = sorted(n for n in imported(path) if n == TOOLKIT or n.startswith(TOOLKIT + "."))
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}: deploy/ imports src/, not back"


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_depends_on_every_module_it_runs(stage: str) -> None:
    command = STAGES[stage]["cmd"].split()
    module = command[command.index("-m") + 1]
    runs = {path.relative_to(ROOT).as_posix() for path in closure(module)}
    missing = sorted(runs - set(STAGES[stage]["deps"]))
    assert not missing, f"dvc.yaml stage {stage} runs {missing} but does not list them in deps"
