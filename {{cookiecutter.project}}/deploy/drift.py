"""`make drift INPUT=<CSV or prediction log> [ENV=production]`: do recent inputs, and the model's
predictions on them, still look like the training data of the model that serves them?

The reference is the training split of that model: for an environment, found through lineage
(its MLflow alias -> run -> the DVC hash of data/prepared it recorded -> the train split in the DVC
cache); without ENV, the local split `make train` used. Each feature is compared with a two-sample test
from SciPy (Kolmogorov-Smirnov for numbers, chi-squared on the level counts for categories), and
so is the model's score. Writes build/drift.html and build/drift.json (one verdict per feature)
and exits 1 when the score drifted or more than `drift.max_drifted_share` of the features did, a
feature drifting when its p-value is below `drift.p_value` (params.yaml).
"""

from __future__ import annotations

import argparse
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.__package }}.data import read_prepared
from {{ cookiecutter.__package }}.errors import ProjectError, run
from {{ cookiecutter.__package }}.paths import PREPARED, TRAIN_FILE

from .deployed_model import DeployedModel, resolve
from .params import load_pipeline_params
from .settings import Settings, load_settings

REPORT, SUMMARY = Path("build/drift.html"), Path("build/drift.json")
STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em } table { border-collapse: collapse }
td, th { padding: .3em .6em; border-bottom: 1px solid #ddd; text-align: left }
tr.drift td:last-child { color: #b00; font-weight: bold }
.bars { display: inline-flex; gap: 2px; height: 2em }
.bin { display: inline-flex; align-items: flex-end; width: 10px } .bin i { width: 5px; display: block }
.ref { background: #999 } .cur { background: #36c }
"""


def read_input(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file, or JSON lines of records (a prediction log line keeps them under "features")."""
    if not path.is_file():
        raise ProjectError(f"{path}: no such file")
    if not path.stat().st_size:
        raise ProjectError(f"{path}: the file is empty; nothing to compare")
    if path.suffix.lower() in (".jsonl", ".json", ".log"):
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ProjectError(f"{path}: line {number} is not JSON: {error.msg}") from None
                records.append(record.get("features", record) if isinstance(record, dict) else {})
        return pd.DataFrame.from_records(records)
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as error:
        raise ProjectError(f"{path}: cannot read it as CSV or Parquet: {error}") from None


def reference_of(settings: Settings, deployed: DeployedModel) -> tuple[pd.DataFrame, str]:
    """The deployed model's training split, and where it came from."""
    if not deployed.tags:
        if not TRAIN_FILE.is_file():
            raise ProjectError(f"{TRAIN_FILE}: not found; run `make train`")
        return read_prepared(TRAIN_FILE), str(TRAIN_FILE)
    # The run's hash of the prepared splits (a DVC directory object) names the exact file.
    tag, commit = deployed.tags.get(f"dvc_md5:{PREPARED}", ""), deployed.tags.get("git_commit", "")
    if not tag.endswith(".dir"):
        raise ProjectError(f"MLflow run {deployed.mlflow_run_id} records no {PREPARED} hash")
    from dvc.repo import Repo

    cache = Repo(str(settings.root)).cache.local
    listing = Path(cache.oid_to_path(tag))
    if not listing.is_file():
        raise ProjectError(
            f"DVC: the training data of run {deployed.mlflow_run_id} ({PREPARED} md5 {tag}) is "
            f"not in the local cache; `git checkout {commit[:12]} && dvc pull` fetches it"
        )
    entries = {e["relpath"]: e["md5"] for e in json.loads(listing.read_text(encoding="utf-8"))}
    md5 = entries.get(TRAIN_FILE.name)
    if md5 is None:  # trained before the splits were Parquet files
        raise ProjectError(
            f"DVC: run {deployed.mlflow_run_id}'s {PREPARED} has no {TRAIN_FILE.name}"
        )
    data = Path(cache.oid_to_path(md5))
    if not data.is_file():
        raise ProjectError(f"DVC: {TRAIN_FILE} md5 {md5} is not in the local cache; run `dvc pull`")
    return read_prepared(data), f"{TRAIN_FILE} of run {deployed.mlflow_run_id} (md5 {md5})"


def typed(frame: pd.DataFrame, schema: dict[str, Any], source: str) -> pd.DataFrame:
    names = [feature["name"] for feature in schema["features"]]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ProjectError(
            f"{source}: {len(missing)} of the model's {len(names)} feature column(s) are missing "
            f"({', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''}): "
            "is it another model's data?"
        )
    if frame.empty:
        raise ProjectError(f"{source}: no rows; nothing to compare")
    columns = {}
    for feature in schema["features"]:
        values = frame[feature["name"]]
        if feature["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() & values.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
                raise ProjectError(
                    f"{source}: row {row}, column {feature['name']!r}: "
                    f"{str(values[bad].iloc[0])[:40]!r} is not a number"
                )
            columns[feature["name"]] = numbers.astype(np.float64)
        else:
            columns[feature["name"]] = values.astype(object).where(values.notna(), np.nan)
    return pd.DataFrame(columns)


def compare(reference: pd.Series, current: pd.Series, numeric: bool) -> dict[str, Any]:
    from scipy import stats

    ref, cur = reference.dropna(), current.dropna()
    if numeric:
        test, result = "Kolmogorov-Smirnov", stats.ks_2samp(ref, cur)
        statistic, p_value = float(result.statistic), float(result.pvalue)
        edges = np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
        bins = [np.searchsorted(edges, s, side="left") for s in (ref, cur)]
        labels = [str(k) for k in range(len(edges) + 1)]
        counts = [np.bincount(b, minlength=len(labels)) for b in bins]
    else:
        labels = sorted({*map(str, ref), *map(str, cur)})
        counts = [
            s.astype(str).value_counts().reindex(labels, fill_value=0).to_numpy()
            for s in (ref, cur)
        ]
        table = np.array(counts)
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            test, statistic, p_value = "chi-squared", 0.0, 1.0
        else:
            test, result = "chi-squared", stats.chi2_contingency(table)
            statistic, p_value = float(result.statistic), float(result.pvalue)
    fractions = [(c / max(c.sum(), 1)).round(4).tolist() for c in counts]
    return {
        "test": test,
        "statistic": round(statistic, 6),
        "p_value": p_value,
        "bins": labels,
        "reference": fractions[0],
        "current": fractions[1],
        "missing_share": round(float(current.isna().mean()), 4),
    }


def scores(deployed: DeployedModel, features: pd.DataFrame) -> pd.Series:
    if deployed.schema["task"] == "classification":
        return pd.Series(deployed.model.predict_proba(features).max(axis=1))
    return pd.Series(deployed.model.predict(features).astype(np.float64))


def summarise(
    deployed: DeployedModel,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    p_value: float,
    max_share: float,
) -> dict[str, Any]:
    features = {}
    for feature in deployed.schema["features"]:
        name = feature["name"]
        result = compare(reference[name], current[name], feature["kind"] == "numeric")
        features[name] = {"kind": feature["kind"], **result, "drift": result["p_value"] < p_value}
    prediction = compare(scores(deployed, reference), scores(deployed, current), True)
    prediction["drift"] = prediction["p_value"] < p_value
    share = sum(f["drift"] for f in features.values()) / len(features)
    return {
        "model_version": deployed.model_version,
        "mlflow_run_id": deployed.mlflow_run_id,
        "model": deployed.source,
        "thresholds": {"p_value": p_value, "max_drifted_share": max_share},
        "features": features,
        "prediction": prediction,
        "drifted_share": round(share, 4),
        "drift": prediction["drift"] or share > max_share,
    }


def bars(result: dict[str, Any]) -> str:
    """Training vs current fractions per bin as two rows of CSS bars (no script, no network)."""
    cells = []
    for label, ref, cur in zip(result["bins"], result["reference"], result["current"], strict=True):
        cells.append(
            f'<span class="bin" title="bin {html.escape(label)}: training {ref:.1%}, current {cur:.1%}">'
            f'<i class="ref" style="height:{ref * 100:.1f}%"></i>'
            f'<i class="cur" style="height:{cur * 100:.1f}%"></i></span>'
        )
    return f'<span class="bars">{"".join(cells)}</span>'


def render(summary: dict[str, Any], reference: str, current: str) -> str:
    rows = []
    for name, result in [*summary["features"].items(), ("model score", summary["prediction"])]:
        verdict = "drift" if result["drift"] else "ok"
        rows.append(
            f'<tr class="{verdict}" data-feature="{html.escape(name)}"><th>{html.escape(name)}</th>'
            f"<td>{result['test']}</td><td>{result['statistic']:.4g}</td>"
            f"<td>{result['p_value']:.3g}</td><td>{result['missing_share']:.1%}</td>"
            f"<td>{bars(result)}</td><td>{verdict}</td></tr>"
        )
    verdict = "DRIFT" if summary["drift"] else "no drift"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {html.escape(summary["model"])}</title>
<style>{STYLE}</style></head><body>
<h1>Drift report: {verdict}</h1>
<p>Model {html.escape(summary["model"])}, version {html.escape(summary["model_version"])}, run
{html.escape(summary["mlflow_run_id"])}.<br>Reference (training split): {html.escape(reference)}.
Current: {html.escape(current)}.<br>A feature drifts when p &lt; {summary["thresholds"]["p_value"]};
the report fails when the score drifts or more than {summary["thresholds"]["max_drifted_share"]:.0%}
of the features do ({summary["drifted_share"]:.0%} did).
Bars: training (grey) and current (blue) share per training decile or level.</p>
<table><thead><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>missing</th>
<th>distribution</th><th>verdict</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.drift", description=__doc__)
    parser.add_argument("--input", default=os.environ.get("INPUT"))
    parser.add_argument("--env", default=os.environ.get("ENV") or None)
    args = parser.parse_args(argv)
    if not args.input:
        raise ProjectError("drift: give INPUT=<file.csv or prediction log .jsonl>")
    settings = load_settings()
    thresholds = load_pipeline_params(settings.root).drift
    source = Path(args.input)
    raw = read_input(source)
    deployed = resolve(settings, args.env)
    current = typed(raw, deployed.schema, str(source))
    reference_frame, reference = reference_of(settings, deployed)
    summary = summarise(
        deployed,
        typed(reference_frame, deployed.schema, reference),
        current,
        thresholds.p_value,
        thresholds.max_drifted_share,
    )
    summary["reference"], summary["current"] = reference, f"{source} ({len(current)} rows)"
    (settings.root / "build").mkdir(exist_ok=True)
    (settings.root / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (settings.root / REPORT).write_text(
        render(summary, reference, summary["current"]), encoding="utf-8"
    )
    drifted = [name for name, f in summary["features"].items() if f["drift"]]
    score = "drifted" if summary["prediction"]["drift"] else "stable"
    print(
        f"drift: {len(drifted)} of {len(summary['features'])} features drifted"
        f"{' (' + ', '.join(drifted[:5]) + (', ...' if len(drifted) > 5 else '') + ')' if drifted else ''}"
        f", model score {score}: {'DRIFT' if summary['drift'] else 'no drift'}; {REPORT}, {SUMMARY}"
    )
    if summary["drift"]:
        raise ProjectError(
            f"drift past the thresholds in params.yaml (drift.p_value {thresholds.p_value}, "
            f"drift.max_drifted_share {thresholds.max_drifted_share}): see {REPORT}"
        )


if __name__ == "__main__":
    run(main)
