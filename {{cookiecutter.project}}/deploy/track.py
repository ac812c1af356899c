"""Log the trained model to MLflow: params, metrics, lineage tags and the model, registered under
the project name. Idempotent: an unchanged model is not logged twice. Aliases are not set here:
the environment's alias moves when the deploy has put the version there (deploy/gitops).

`make train` runs `python -m deploy.track --repro`: `dvc repro`, then this logging. While DVC's
process runs the stages, a thread here imports MLflow and scikit-learn and, on a checkout's first
run, creates the sqlite store: 2-6 s that would otherwise follow the stages. Writes
build/lineage.json for the later pipeline steps, and the model card (deploy/model_card.py), also
logged to the run.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError, run
from {{ cookiecutter.__package }}.paths import (
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PARAMS_FILE,
    PLOTS_DIR,
    SCHEMA_FILE,
    TEST_FILE,
    TRAIN_FILE,
)

from . import lineage, mlflow_client, model_card, profile
from .artifacts import ModelCardRecord, TrainRecord
from .naming import env_name, mlflow_alias
from .settings import load_settings
from .urls import redact

# `dvc repro` with every stage unchanged takes ~0.8 s; one that runs a stage, at least twice that.
NOTHING_TO_RUN_SECONDS = 1.0
# Identical model bytes from the same commit, params and data are the same model version.
IDENTITY_TAGS = ("model_sha256", "git_commit", "params_sha256", "dvc_lock_sha256")


def flat_params(path: Path = PARAMS_FILE) -> dict[str, str]:
    """params.yaml as `block.key` -> value strings (MLflow params are flat)."""
    import yaml

    def walk(prefix: str, value) -> dict[str, str]:
        if isinstance(value, dict):
            return {
                k: v for key, sub in value.items() for k, v in walk(f"{prefix}{key}.", sub).items()
            }
        return {prefix[:-1]: json.dumps(value) if isinstance(value, list) else str(value)}

    return walk("", yaml.safe_load(path.read_text(encoding="utf-8")))


def find_logged_run(client, experiment_id: str, tags: dict[str, str]):
    """The finished run of this very model; a run cut short (server gone) is logged again."""
    query = " and ".join(f"tags.{key} = '{tags[key]}'" for key in IDENTITY_TAGS)
    query += " and attributes.status = 'FINISHED'"
    runs = client.search_runs([experiment_id], filter_string=query, max_results=1)
    return runs[0] if runs else None


def log_new_run(experiment_id: str, project: str, tags: dict[str, str]) -> str:
    import mlflow
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    from {{ cookiecutter.__package }}.data import features_and_target, read_prepared, read_schema
    from {{ cookiecutter.__package }}.evaluate import load_model
    from {{ cookiecutter.__package }}.serving.api import PROFILE_FILE

    schema = read_schema()
    features, _ = features_and_target(read_prepared(TEST_FILE), schema)
    example = features.head(5)
    model = load_model()
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as active:
        mlflow.log_params(flat_params())
        mlflow.log_metrics(json.loads(METRICS_FILE.read_text(encoding="utf-8")))
        mlflow.log_artifact(str(SCHEMA_FILE))
        mlflow.log_artifact(str(METRICS_FILE))
        train, _ = features_and_target(read_prepared(TRAIN_FILE), schema)
        mlflow.log_text(json.dumps(profile.build(train, schema, model), indent=1), PROFILE_FILE)
        if PLOTS_DIR.is_dir():
            mlflow.log_artifacts(str(PLOTS_DIR), artifact_path="plots")
        mlflow.sklearn.log_model(
            model,
            name="model",
            # cloudpickle: skops refuses tree models unless every type is listed as trusted.
            serialization_format="cloudpickle",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            # Explicit: inference is slow and guesses wrong versions.
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"pandas=={pd.__version__}",
                f"cloudpickle=={__import__('cloudpickle').__version__}",
            ],
            registered_model_name=project,
        )
        return active.info.run_id


def model_version_of(client, project: str, run_id: str) -> str:
    versions = client.search_model_versions(f"name = '{project}' and run_id = '{run_id}'")
    if not versions:
        raise ProjectError(f"MLflow: run {run_id} has no registered version of model {project!r}")
    return str(max(int(v.version) for v in versions))


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return (
        f"{tracking_uri} (experiment {experiment_id}, run {run_id}; browse with `make mlflow-ui`)"
    )


def quiet_mlflow() -> None:
    """MLflow's warnings and errors only: its info lines would interleave with the stages'."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")


def open_mlflow(tracking_uri: str) -> None:
    """What logging needs first and takes seconds: the imports and the store (sqlite: created on
    first use). A failure is left for the logging itself to report, after the stages."""
    try:
        import mlflow.sklearn  # noqa: F401 - imported for its import time
        from mlflow.models import infer_signature  # noqa: F401

        mlflow_client.client(tracking_uri)  # creates a sqlite store; no request to a server
    except Exception:  # noqa: S110 - main() reports it, naming the tracking URI
        pass


def repro_then_log() -> None:
    """`make train`: `dvc repro` with MLflow opened meanwhile, then main()."""
    settings = load_settings()
    store = settings.mlflow_tracking_uri.removeprefix("sqlite:///")
    # A store being created is waited for even when nothing is logged: never left half-migrated.
    creating = store != settings.mlflow_tracking_uri and not Path(store).exists()
    quiet_mlflow()
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro"])
    opening = None
    try:  # a repro with nothing to run ends first and gets no thread competing with it
        code = repro.wait(timeout=0 if creating else NOTHING_TO_RUN_SECONDS)
    except subprocess.TimeoutExpired:
        # After the fork, so DVC's environment is this one untouched; a daemon, so that a run
        # that logs nothing does not wait for it.
        uri = settings.mlflow_tracking_uri
        opening = threading.Thread(target=open_mlflow, args=(uri,), daemon=True)
        opening.start()
        code = repro.wait()
    if creating and opening:
        opening.join()
    if code:
        sys.exit(code)
    main(opening)


def main(opening: threading.Thread | None = None) -> None:
    settings = load_settings()
    for needed in (MODEL_FILE, LOCK_FILE):
        if not (settings.root / needed).is_file():
            raise ProjectError(f"{needed}: not found; run `make train` (dvc repro) first")
    tags = lineage.collect(settings.root, MODEL_FILE)
    identity = {key: tags[key] for key in IDENTITY_TAGS}
    # Nothing changed since the last logging: answer without importing MLflow (seconds saved).
    try:
        recorded = TrainRecord.read(settings.root)
        card = ModelCardRecord.read(settings.root)
    except ProjectError:
        recorded = card = None  # another version's record: log again, which rewrites it
    if (
        recorded
        and recorded.mlflow_tracking_uri == redact(settings.mlflow_tracking_uri)
        and recorded.identity == identity
        and card
        and card.mlflow_run_id == recorded.mlflow_run_id
    ):
        print(
            f"mlflow: unchanged, run {recorded.mlflow_run_id} model version {recorded.model_version}"
        )
        return

    if opening:  # the imports and store it began, finished before they are used here
        opening.join()
    import mlflow

    from {{ cookiecutter.__package }}.serving.api import CARD_FILE

    quiet_mlflow()
    with mlflow_client.one_line_errors(settings.mlflow_tracking_uri):
        client = mlflow_client.client(settings.mlflow_tracking_uri)
        experiment_id = mlflow.set_experiment(settings.project).experiment_id
        logged = find_logged_run(client, experiment_id, tags)
        run_id = (
            logged.info.run_id if logged else log_new_run(experiment_id, settings.project, tags)
        )
        version = model_version_of(client, settings.project, run_id)
        # The champion: the version the `production` alias points at (training moves no alias).
        champion = model_card.champion_of(client, settings.project, version)
    alias = mlflow_alias(env_name(tags["git_branch"], settings.default_branch))

    # Records and logs never carry credentials; later steps connect with the settings again.
    tracking_uri = redact(settings.mlflow_tracking_uri)
    record = TrainRecord(
        mlflow_tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        mlflow_run_id=run_id,
        run_url=run_url(tracking_uri, experiment_id, run_id),
        model_name=settings.project,
        model_version=version,
        model_alias=alias,
        git_commit=tags["git_commit"],
        git_branch=tags["git_branch"],
        data_md5=tags["data_md5"],
        metrics=json.loads(METRICS_FILE.read_text(encoding="utf-8")),
        identity=identity,
    )
    record.write(settings.root)
    model_card.collect(settings.root, run_id, champion).write(settings.root)
    text = model_card.write(settings.root) or ""
    client.log_text(run_id, text, CARD_FILE)
    state = "found" if logged else "logged"
    print(f"mlflow: {state} run {run_id}, model {settings.project} version {version}")
    print(f"mlflow: {record.run_url}")
    print(f"model card: {model_card.CARD_FILE}, logged to the run as {CARD_FILE}")


if __name__ == "__main__":
    run(repro_then_log if sys.argv[1:] == ["--repro"] else main)
