"""`make bento` and `make serve`: package the registered model as a Bento, and serve it.

    python -m deploy.bento                               build the Bento (build/bento.json)
    python -m deploy.bento serve [--host H] [--port P]   serve it in the foreground

The model comes from the MLflow registry: the version `make train` registered (build/lineage.json),
so the Bento (and the image built from it) is the exact model version of the run it names: run id, version, alias, git commit
and data hash travel as model metadata and Bento labels. MLflow is needed here, not at serving
time: the model goes into the BentoML store as a plain pickle of the scikit-learn pipeline.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

from {{ cookiecutter.__package }}.errors import ProjectError, run
from {{ cookiecutter.__package }}.serving.api import (
    CARD_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    SCHEMA_FILE,
    ModelLineage,
)

from . import mlflow_client
from .artifacts import BentoRecord, TrainRecord
from .settings import Settings, load_settings
from .urls import redact


def bentoml_home(project: str) -> Path:
    """The BentoML store: outside the repo, because the build context must not contain it."""
    configured = os.environ.get("BENTOML_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / f"bentoml-{project}"


def fetch_model(settings: Settings, trained: TrainRecord, into: Path) -> tuple[Any, ModelLineage]:
    """The scikit-learn model of the version `make train` registered and its lineage; its
    schema.json and model card go into `into`. By version, not by alias: another pipeline may
    have moved the alias since."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one file: no bar
    import mlflow
    import mlflow.sklearn

    with mlflow_client.one_line_errors(settings.mlflow_tracking_uri):
        client = mlflow_client.client(settings.mlflow_tracking_uri)
        version = client.get_model_version(settings.project, trained.model_version)
        run = client.get_run(version.run_id)
        model = mlflow.sklearn.load_model(f"models:/{settings.project}/{version.version}")
        for name in (SCHEMA_FILE, CARD_FILE):
            try:
                mlflow.artifacts.download_artifacts(
                    run_id=version.run_id, artifact_path=name, dst_path=str(into)
                )
            except OSError:
                raise ProjectError(
                    f"MLflow run {version.run_id} ({settings.project} version "
                    f"{version.version}) has no {name}; run `make train`"
                ) from None
        try:  # runs logged before profiles existed have none: their metrics bin less
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=PROFILE_FILE, dst_path=str(into)
            )
        except OSError:
            print(f"MLflow run {version.run_id} has no {PROFILE_FILE}: metrics without bins")
    tags = run.data.tags
    lineage = ModelLineage(
        model_name=settings.project,
        model_version=str(version.version),
        model_alias=trained.model_alias,
        mlflow_run_id=version.run_id,
        mlflow_tracking_uri=redact(settings.mlflow_tracking_uri),
        git_commit=tags.get("git_commit", ""),
        git_branch=tags.get("git_branch", ""),
        data_md5=tags.get("data_md5", ""),
    )
    return model, lineage


def runtime_requirements(root: Path) -> list[str]:
    """`name==version` for the service's runtime dependencies and theirs, as installed here.

    The runtime dependencies are pyproject.toml's `[project] dependencies` (what the image
    installs). The venv is synced from uv.lock, so these are the locked versions; walking the
    installed metadata keeps MLflow, DVC and their trees out.
    """
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins: dict[str, str] = {}
    pending = [Requirement(line) for line in project["dependencies"]]
    while pending:
        requirement = pending.pop()
        name = requirement.name.lower().replace("_", "-")
        # Only unconditional dependencies (and those of this platform/Python), no extras.
        if name in pins or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        dist = metadata.distribution(name)
        pins[name] = dist.version
        pending += [Requirement(line) for line in dist.requires or []]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def labels_of(lineage: ModelLineage) -> dict[str, str]:
    """The lineage as store and Bento labels (the tracking URI stays in the metadata only)."""
    return lineage.model_dump(exclude={"mlflow_tracking_uri"})


def save_model(project: str, model: Any, lineage: ModelLineage, files: Path) -> str:
    """Put the model, its schema and its card into the BentoML store; returns the model tag."""
    import bentoml

    with bentoml.models.create(
        name=project, labels=labels_of(lineage), metadata={"lineage": lineage.model_dump()}
    ) as stored:
        with open(stored.path_of(MODEL_FILE), "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
        for name in (SCHEMA_FILE, CARD_FILE, PROFILE_FILE):
            if (files / name).is_file():
                shutil.copyfile(files / name, stored.path_of(name))
    return str(stored.tag)


def build_bento(root: Path, lineage: ModelLineage) -> Any:
    """`bentoml build` with bentofile.yaml plus the exact requirements and lineage labels."""
    import bentoml

    config = yaml.safe_load((root / "bentofile.yaml").read_text(encoding="utf-8"))
    config.setdefault("python", {})["packages"] = runtime_requirements(root)
    config["labels"] = {**config.get("labels", {}), **labels_of(lineage)}
    return bentoml.bentos.build(**config, build_ctx=str(root / "src"))


def bento(settings: Settings) -> None:
    trained = TrainRecord.require(settings.root)
    with tempfile.TemporaryDirectory() as scratch:
        model, lineage = fetch_model(settings, trained, Path(scratch))
        model_tag = save_model(settings.project, model, lineage, Path(scratch))
    built = build_bento(settings.root, lineage)
    BentoRecord(
        tag=str(built.tag), path=built.path, bento_model=model_tag, **lineage.model_dump()
    ).write(settings.root)
    print(f"built {built.tag} from {settings.project} version {lineage.model_version}")


def serve(settings: Settings, host: str, port: int) -> None:
    """Replace this process with `bentoml serve <tag>` (foreground; Ctrl-C stops it)."""
    tag = BentoRecord.require(settings.root).tag
    bentoml_cli = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml_cli), "serve", tag, "--host", host, "--port", str(port)]
    os.execv(command[0], command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.bento", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_args = sub.add_parser("serve", help="serve the built Bento in the foreground")
    serve_args.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    serve_args.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    args = parser.parse_args(argv)
    settings = load_settings()
    # Before bentoml is imported: it reads BENTOML_HOME once.
    os.environ["BENTOML_HOME"] = str(bentoml_home(settings.project))
    if args.command == "serve":
        serve(settings, args.host, args.port)
    else:
        bento(settings)


if __name__ == "__main__":
    run(main)
