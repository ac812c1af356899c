"""The model card of every version: build/model_card.md, logged to the MLflow run as
model_card.md, packaged in the Bento and served at GET /model-card.

    python -m deploy.model_card      render build/model_card.md from the build records

`make train` gathers what is known at training time into build/model_card.json (data, training,
test metrics beside the champion's, i.e. the production model's then); each later step renders
the card again with what it adds (`make reproduce` the verdict, `make image` the digest) and logs
it to the run again. The team's own words, intended use and limitations, come from
docs/model-use.md, which the card quotes (its HTML comments left out).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package }}.atomic import write_text
from {{ cookiecutter.__package }}.errors import ProjectError, run

from .artifacts import BUILD, ImageRecord, ModelCardRecord, ReproduceRecord, TrainRecord
from .markdown import cell, table
from .naming import PRODUCTION

CARD_FILE = BUILD / "model_card.md"
TEAM_FILE = Path("docs/model-use.md")
TEAM_PLACEHOLDER = (
    "## Intended use\n\n_For the team to fill in (docs/model-use.md)._\n\n"
    "## Limitations\n\n_For the team to fill in (docs/model-use.md)._\n"
)


def collect(root: Path, run_id: str, champion: dict[str, Any] | None) -> ModelCardRecord:
    """What the card says of the data and the training, from params.yaml and the DVC outputs."""
    import pandas as pd

    from {{ cookiecutter.__package }}.config import load_params
    from {{ cookiecutter.__package }}.data import read_prepared, read_schema
    from {{ cookiecutter.__package }}.evaluate import load_model
    from {{ cookiecutter.__package }}.paths import LOCK_FILE, METRICS_FILE, TEST_FILE, TRAIN_FILE

    from .lineage import data_hashes

    params = load_params(root / "params.yaml")
    schema = read_schema()
    # The target column alone: the card describes it, and a split may be large.
    targets = {
        split: read_prepared(path, columns=[schema["target"]])[schema["target"]]
        for split, path in (("train", TRAIN_FILE), ("test", TEST_FILE))
    }
    both = pd.concat(targets.values(), ignore_index=True)
    if schema["task"] == "classification":
        counts = both.value_counts()
        balance = {str(label): float(counts.get(label, 0)) for label in schema["classes"]}
    else:
        values = both.to_numpy(dtype="float64")
        balance = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return ModelCardRecord(
        mlflow_run_id=run_id,
        data_source=params.data.path,
        data_md5=data_hashes(root / LOCK_FILE).get(params.data.path, ""),
        task=schema["task"],
        target=schema["target"],
        features=[feature["name"] for feature in schema["features"]],
        rows={split: len(values) for split, values in targets.items()},
        target_balance=balance,
        estimator=params.train.model,
        estimator_class=type(load_model()[-1]).__name__,
        hyperparameters=dict(params.train.hyperparameters),
        seed=params.train.seed,
        split_seed=params.data.seed,
        primary_metric=params.evaluate.primary_metric,
        metrics=json.loads((root / METRICS_FILE).read_text(encoding="utf-8")),
        champion=champion,
    )


def champion_of(client: Any, project: str, version: str) -> dict[str, Any] | None:
    """The production model before this one, if there is one and it is another version."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(project, PRODUCTION)
    except MlflowException:
        return None
    if str(current.version) == str(version):
        return None
    return {
        "model_version": str(current.version),
        "mlflow_run_id": current.run_id,
        "metrics": dict(client.get_run(current.run_id).data.metrics),
    }


def balance_text(card: ModelCardRecord) -> str:
    if card.task != "classification":
        b = card.target_balance
        return cell(
            f"mean {b['mean']:.4g}, std {b['std']:.4g}, range {b['min']:.4g} to {b['max']:.4g}"
        )
    total = sum(card.target_balance.values()) or 1
    return ", ".join(
        f"`{cell(label)}` {count:.0f} ({count / total:.1%})"
        for label, count in card.target_balance.items()
    )


def metrics_table(card: ModelCardRecord) -> str:
    champion = card.champion
    if not champion:
        rows = [(f"`{cell(k)}`", cell(v)) for k, v in sorted(card.metrics.items())]
        note = "_No champion to compare with: no model was in production when this one trained._\n"
        return table(("metric (test split)", "this version"), rows) + "\n" + note
    theirs = champion.get("metrics", {})
    header = f"champion (production, version {cell(champion.get('model_version'))})"
    rows = [(f"`{cell(k)}`", cell(v), cell(theirs.get(k))) for k, v in sorted(card.metrics.items())]
    return table(("metric (test split)", "this version", header), rows)


def reproducibility(trained: TrainRecord | None, checked: ReproduceRecord | None) -> str:
    model = trained.identity.get("model_sha256") if trained else None
    if checked is None or not model or checked.model_sha256 != model:
        return "_Not checked yet (`make reproduce`)._\n"
    icon = {"pass": "✅", "fail": "❌"}.get(checked.verdict, "❔")
    failures = "".join(f"- {cell(failure)}\n" for failure in checked.failures)
    return f"{icon} **{cell(checked.verdict.upper())}** (tolerance {cell(checked.tolerance)})\n{failures}"


def render(
    card: ModelCardRecord,
    trained: TrainRecord | None,
    checked: ReproduceRecord | None,
    image: ImageRecord | None,
    team_text: str,
) -> str:
    ours = trained if trained and trained.mlflow_run_id == card.mlflow_run_id else None
    built = image if image and image.mlflow_run_id == card.mlflow_run_id else None
    name = f"{ours.model_name} version {ours.model_version}" if ours else card.mlflow_run_id
    hyper = ", ".join(f"`{cell(k)}={cell(v)}`" for k, v in sorted(card.hyperparameters.items()))
    features = ", ".join(f"`{cell(f)}`" for f in card.features[:12])
    more = f" and {len(card.features) - 12} more" if len(card.features) > 12 else ""
    rows = ", ".join(f"{count} {split}" for split, count in card.rows.items())
    lineage = [
        ("git commit", f"`{cell(ours.git_commit)}`" if ours else "–"),
        ("MLflow run", cell(ours.run_url) if ours else f"`{cell(card.mlflow_run_id)}`"),
        (
            "model version",
            f"`{cell(ours.model_name)}` version {cell(ours.model_version)} (alias `{cell(ours.model_alias)}`)"
            if ours
            else "–",
        ),
        ("image", f"`{cell(built.reference)}`" if built else "_not built yet (`make image`)_"),
    ]
    parts = [
        f"# Model card: {cell(name)}",
        "",
        "## Training",
        table(
            ("", ""),
            [
                ("task", f"{card.task} of `{cell(card.target)}`"),
                ("estimator", f"`{cell(card.estimator)}` ({cell(card.estimator_class)})"),
                ("hyperparameters", hyper or "the estimator's defaults"),
                ("seed", f"{card.seed} (train/test split: {card.split_seed})"),
            ],
        ),
        "## Data",
        table(
            ("", ""),
            [
                ("source", f"`{cell(card.data_source)}`"),
                ("DVC hash (md5)", f"`{cell(card.data_md5)}`" if card.data_md5 else "–"),
                ("rows", rows),
                ("columns", f"{len(card.features)} features ({features}{more}) and the target"),
                ("target balance", balance_text(card)),
            ],
        ),
        f"## Metrics (primary: `{cell(card.primary_metric)}`)",
        metrics_table(card),
        "## Reproducibility",
        reproducibility(ours, checked),
        "## Lineage",
        table(("", ""), lineage),
        team_text.strip(),
    ]
    return "\n".join(parts) + "\n"


def render_from_records(root: Path) -> str | None:
    """The card of the last training, with what the later steps recorded; None before any."""
    card = ModelCardRecord.read(root)
    if card is None:
        return None
    team = root / TEAM_FILE
    team_text = team.read_text(encoding="utf-8") if team.is_file() else TEAM_PLACEHOLDER
    team_text = re.sub(r"<!--.*?-->\s*", "", team_text, flags=re.DOTALL)  # notes to the team
    return render(
        card,
        TrainRecord.read(root),
        ReproduceRecord.read(root),
        ImageRecord.read(root),
        team_text,
    )


def write(root: Path) -> str | None:
    """Render build/model_card.md; returns its text (None when `make train` has not run)."""
    text = render_from_records(root)
    if text is not None:
        write_text(root / CARD_FILE, text)
    return text


def log(root: Path, tracking_uri: str) -> str:
    """Render the card again and log it to its MLflow run (what the later steps call). Never
    fails the step: the card is information; returns what happened, to print."""
    try:
        text = write(root)
        card = ModelCardRecord.read(root)
        if text is None or card is None:
            return "model card: none yet (run `make train`)"
        from mlflow import MlflowClient  # slow imports: only when there is a card to log

        from {{ cookiecutter.__package }}.serving.api import CARD_FILE

        MlflowClient(tracking_uri=tracking_uri).log_text(card.mlflow_run_id, text, CARD_FILE)
        return f"model card: {CARD_FILE}, logged to run {card.mlflow_run_id}"
    except Exception as error:  # noqa: BLE001 - see docstring
        return f"model card: not logged ({type(error).__name__}: {str(error).splitlines()[0]})"


def main() -> None:
    from .settings import load_settings

    root = load_settings().root
    if write(root) is None:
        raise ProjectError(f"{ModelCardRecord.location()}: not found; run `make train` first")
    print(f"model card: {CARD_FILE}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
