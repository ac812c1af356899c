"""`make bento` and `make serve`: package the registered model as a Bento, and serve it.

The model comes from the MLflow registry by this branch's alias, so the Bento (and the image
built from it) is the exact model version of the run it names: run id, version, alias, git commit
and data hash travel as model metadata and Bento labels. MLflow is needed here, not at serving
time: the model goes into the BentoML store as a plain pickle of the scikit-learn pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from packaging.requirements import Requirement

from deploy.naming import env_name, mlflow_alias
from deploy.settings import Settings, current_branch, load

LINEAGE_FILE = Path("build/lineage.json")
BENTO_FILE = Path("build/bento.json")


def bentoml_home(project: str) -> Path:
    """The BentoML store: outside the repo, because the build context must not contain it."""
    configured = os.environ.get("BENTOML_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / f"bentoml-{project}"


def model_alias(settings: Settings) -> str:
    """The registry alias of this branch's model; the last training's alias on a detached HEAD."""
    branch = current_branch(settings.root)
    if branch:
        return mlflow_alias(env_name(branch, settings.default_branch))
    lineage = settings.root / LINEAGE_FILE
    if lineage.is_file():
        return json.loads(lineage.read_text(encoding="utf-8"))["model_alias"]
    sys.exit("cannot tell the branch (detached HEAD?); set DEPLOY_BRANCH or run `make train`")


def without_credentials(uri: str) -> str:
    """The URI minus any user:password, since /metadata serves it to every client."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def fetch_model(settings: Settings, alias: str, into: Path) -> tuple[Any, dict[str, str]]:
    """The scikit-learn model behind `<project>@<alias>`, its lineage, and its schema.json."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one file: no bar
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    version = client.get_model_version_by_alias(settings.project, alias)
    run = client.get_run(version.run_id)
    model = mlflow.sklearn.load_model(f"models:/{settings.project}@{alias}")
    mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="schema.json", dst_path=str(into)
    )
    tags = run.data.tags
    lineage = {
        "model_name": settings.project,
        "model_version": str(version.version),
        "model_alias": alias,
        "mlflow_run_id": version.run_id,
        "mlflow_tracking_uri": without_credentials(settings.mlflow_tracking_uri),
        "git_commit": tags.get("git_commit", ""),
        "git_branch": tags.get("git_branch", ""),
        "data_md5": tags.get("data_md5", ""),
    }
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


def save_model(project: str, model: Any, lineage: dict[str, str], schema: Path) -> str:
    """Put the model and its schema into the BentoML store; returns the model tag."""
    import bentoml

    labels = {key: value for key, value in lineage.items() if key != "mlflow_tracking_uri"}
    with bentoml.models.create(
        name=project, labels=labels, metadata={"lineage": lineage}
    ) as stored:
        with open(stored.path_of("model.pkl"), "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
        shutil.copyfile(schema, stored.path_of("schema.json"))
    return str(stored.tag)


def build_bento(root: Path, lineage: dict[str, str]) -> Any:
    """`bentoml build` with bentofile.yaml plus the exact requirements and lineage labels."""
    import bentoml

    config = yaml.safe_load((root / "bentofile.yaml").read_text(encoding="utf-8"))
    config.setdefault("python", {})["packages"] = runtime_requirements(root)
    config["labels"] = {
        **config.get("labels", {}),
        **{key: value for key, value in lineage.items() if key != "mlflow_tracking_uri"},
    }
    return bentoml.bentos.build(**config, build_ctx=str(root / "src"))


def bento(settings: Settings) -> None:
    alias = model_alias(settings)
    with tempfile.TemporaryDirectory() as scratch:
        model, lineage = fetch_model(settings, alias, Path(scratch))
        model_tag = save_model(settings.project, model, lineage, Path(scratch) / "schema.json")
    built = build_bento(settings.root, lineage)
    record = {"tag": str(built.tag), "path": built.path, "model": model_tag, **lineage}
    out = settings.root / BENTO_FILE
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"built {built.tag} from {settings.project}@{alias} (version {lineage['model_version']})")


def serve(settings: Settings, host: str, port: int) -> None:
    """Replace this process with `bentoml serve <tag>` (foreground; Ctrl-C stops it)."""
    built = settings.root / BENTO_FILE
    if not built.is_file():
        sys.exit("no Bento built yet: run `make bento` first")
    tag = json.loads(built.read_text(encoding="utf-8"))["tag"]
    bentoml_cli = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml_cli), "serve", tag, "--host", host, "--port", str(port)]
    os.execv(command[0], command)


def project_name(root: Path) -> str:
    with open(root / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["name"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m <package>.bento", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_args = sub.add_parser("serve", help="serve the built Bento in the foreground")
    serve_args.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    serve_args.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    args = parser.parse_args(argv)
    settings = load()
    # Before bentoml is imported: it reads BENTOML_HOME once.
    os.environ["BENTOML_HOME"] = str(bentoml_home(settings.project or project_name(settings.root)))
    if args.command == "serve":
        serve(settings, args.host, args.port)
    else:
        bento(settings)


if __name__ == "__main__":
    main()
