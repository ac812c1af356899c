"""The report's pictures: the pipeline's plots (metrics/plots/*.csv, written by evaluate), drawn
by matplotlib as PNG files in build/report/, this change beside the target branch.

    roc.png               both ROC curves on one chart (classification)
    confusion_matrix.png  one confusion matrix each, side by side (classification)
    residuals.png         predicted against actual, both (regression)
    importances.png       the estimator's feature importances or coefficient sizes, this change

The target branch's plot files are read from git (DVC keeps them there: `cache: false`); the
columns of each file are the ones dvc.yaml's `plots:` names. A missing or malformed file is named
in `problems`, never raised: the report is information, and a broken plot must not fail the job.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from {{ cookiecutter.__package }}.atomic import atomic_dir
from {{ cookiecutter.__package }}.paths import MODEL_FILE, PLOTS_DIR

from .artifacts import BUILD
from .commands import git_output

PICTURES_DIR = BUILD / "report"
# What evaluate writes for each task (dvc.yaml says how to read each file).
PLOT_FILES = {
    "classification": ("roc.csv", "confusion_matrix.csv"),
    "regression": ("residuals.csv",),
}
TOP_FEATURES = 15
MAX_CLASSES = 30  # a confusion matrix beyond this is unreadable (and a sign of a wrong file)
THIS, TARGET = "#1f77b4", "#ff7f0e"  # matplotlib's first two colours, one per side


@dataclass(frozen=True)
class Picture:
    title: str
    file: str  # its name in build/report/


@dataclass
class Pictures:
    pictures: list[Picture] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, naming the file
    compared: bool = False  # a target branch's plot is drawn beside this change's


def plot_columns(root: Path) -> dict[str, tuple[str, str]]:
    """dvc.yaml's `plots:`: file name -> (x, y) columns."""
    try:
        spec = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
        return {
            Path(path).name: (options["x"], options["y"])
            for entry in spec.get("plots", [])
            for path, options in entry.items()
        }
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return {}


def read_plot(text: str | None, columns: tuple[str, str], numeric: bool) -> pd.DataFrame | str:
    """The plot's two columns, or why they cannot be drawn."""
    if text is None:
        return "missing"
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        return f"not a readable CSV ({str(error).splitlines()[0]})"
    absent = [name for name in columns if name not in frame.columns]
    if absent:
        return f"no column {absent[0]!r} (dvc.yaml plots)"
    frame = frame[list(columns)]
    if frame.empty:
        return "no rows"
    if numeric:
        frame = frame.apply(pd.to_numeric, errors="coerce")
        if frame.isna().any().any() or not np.isfinite(frame.to_numpy()).all():
            return "values that are not finite numbers"
    return frame.astype(str) if not numeric else frame


def draw_roc(ax, mine: pd.DataFrame, theirs: pd.DataFrame | None, labels: tuple[str, str]) -> None:
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    # The target dashed and under this change, so that equal curves still show both.
    sides = ((theirs, labels[1], TARGET, "--"), (mine, labels[0], THIS, "-"))
    for frame, label, colour, style in sides:
        if frame is not None:
            x, y = frame.columns
            area = float(np.trapezoid(frame[y], frame[x]))
            ax.plot(
                frame[x],
                frame[y],
                style,
                color=colour,
                linewidth=2,
                label=f"{label} (AUC {area:.3f})",
            )
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="lower right")  # this change first


def confusion(frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    predicted, actual = frame.columns  # dvc.yaml: x is predicted, y is actual
    table = pd.crosstab(frame[actual], frame[predicted]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    return table.to_numpy()


def draw_confusion(ax, counts: np.ndarray, classes: list[str], title: str) -> None:
    ax.imshow(counts, cmap="Blues", vmin=0)
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual", title=title)
    ax.set_xticklabels(classes, rotation=30 if len(classes) > 3 else 0)
    ax.set_yticklabels(classes)
    high = counts.max() / 2
    for (row, col), value in np.ndenumerate(counts):
        ax.text(
            col,
            row,
            str(value),
            ha="center",
            va="center",
            color="white" if value > high else "black",
        )


def draw_residuals(
    ax, mine: pd.DataFrame, theirs: pd.DataFrame | None, labels: tuple[str, str]
) -> None:
    frames = [f for f in (mine, theirs) if f is not None]
    low = min(float(f.min().min()) for f in frames)
    high = max(float(f.max().max()) for f in frames)
    ax.plot([low, high], [low, high], color="0.7", linestyle=":", linewidth=1)
    for frame, label, colour in ((theirs, labels[1], TARGET), (mine, labels[0], THIS)):
        if frame is not None:
            x, y = frame.columns
            ax.scatter(frame[x], frame[y], s=12, alpha=0.6, color=colour, label=label)
    ax.set(xlabel="actual", ylabel="predicted")
    ax.legend(loc="upper left")


def importances(model) -> tuple[str, pd.Series] | None:
    """The estimator's feature importances, else the size of its coefficients (on standardised
    features, so comparable); None for an estimator with neither (e.g. gradient boosting)."""
    estimator = model[-1]
    try:
        names = model[-2].get_feature_names_out()  # the columns the estimator sees
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
    if hasattr(estimator, "feature_importances_"):
        kind, values = "feature importance", np.asarray(estimator.feature_importances_)
    elif hasattr(estimator, "coef_"):
        coef = np.atleast_2d(estimator.coef_)
        kind, values = "|coefficient| (standardised features)", np.abs(coef).mean(axis=0)
    else:
        return None
    if len(values) != len(names):
        return None
    series = pd.Series(values, index=[str(n) for n in names]).sort_values(ascending=False)
    return kind, series.head(TOP_FEATURES)[::-1]


def render(root: Path, target_ref: str | None, target_label: str, task: str) -> Pictures:
    """Draw every picture into build/report/ (replaced whole); problems are named, not raised."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    result = Pictures()
    columns = plot_columns(root)
    labels = ("this change", f"target {target_label}")

    def load(name: str, ref: str | None) -> pd.DataFrame | None:
        path = PLOTS_DIR / name
        if name not in columns:
            result.problems.append(f"`{path}`: dvc.yaml `plots:` does not describe it")
            return None
        if ref:
            text = git_output(root, "show", f"{ref}:{path.as_posix()}")
        else:
            file = root / path
            text = file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None
        frame = read_plot(text, columns[name], numeric=name != "confusion_matrix.csv")
        if isinstance(frame, str):
            # A target branch without plots is said once, by the report.
            if ref is None or frame != "missing":
                side = f" on the target {target_label}" if ref else ""
                result.problems.append(f"`{path}`{side}: {frame}")
            return None
        return frame

    def save(figure, file: str, title: str) -> None:
        figure.tight_layout()
        # No timestamp or version in the file: the same plots give the same bytes.
        figure.savefig(staging / file, dpi=100, metadata={"Software": None})
        plt.close(figure)
        result.pictures.append(Picture(title, file))

    with atomic_dir(root / PICTURES_DIR) as staging:
        for name in PLOT_FILES[task]:
            mine = load(name, None)
            if mine is None:
                continue
            theirs = load(name, target_ref) if target_ref else None
            result.compared |= theirs is not None
            if name == "roc.csv":
                figure, ax = plt.subplots(figsize=(6, 4.5))
                draw_roc(ax, mine, theirs, labels)
                save(figure, "roc.png", "ROC curve")
            elif name == "residuals.csv":
                figure, ax = plt.subplots(figsize=(6, 4.5))
                draw_residuals(ax, mine, theirs, labels)
                save(figure, "residuals.png", "Predicted against actual")
            else:
                sides = [(mine, labels[0])] + ([(theirs, labels[1])] if theirs is not None else [])
                classes = sorted(set().union(*(set(f.to_numpy().ravel()) for f, _ in sides)))
                if len(classes) > MAX_CLASSES:
                    result.problems.append(
                        f"`{PLOTS_DIR / name}`: {len(classes)} classes, more than the "
                        f"{MAX_CLASSES} a confusion matrix can show"
                    )
                    continue
                figure, axes = plt.subplots(
                    1, len(sides), figsize=(4.5 * len(sides), 4), squeeze=False
                )
                for ax, (frame, label) in zip(axes[0], sides, strict=True):
                    draw_confusion(ax, confusion(frame, classes), classes, label)
                save(figure, "confusion_matrix.png", "Confusion matrix")
        drawn = draw_importances(root, plt)
        if isinstance(drawn, str):
            result.problems.append(drawn)
        elif drawn is not None:
            save(drawn, "importances.png", "Feature importances (this change)")
    return result


def draw_importances(root: Path, plt) -> object | str | None:
    """A bar chart of the model's importances; None when it has none; a problem line when the
    model cannot be read."""
    path = root / MODEL_FILE
    if not path.is_file():
        return f"`{MODEL_FILE}`: missing, so no feature importances"
    try:
        with path.open("rb") as handle:
            model = pickle.load(handle)  # our own DVC output, never user-supplied
        found = importances(model)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as error:
        return f"`{MODEL_FILE}`: not readable ({type(error).__name__}), so no feature importances"
    if found is None:
        return None
    kind, series = found
    figure, ax = plt.subplots(figsize=(6, 0.3 * len(series) + 1.2))
    ax.barh(series.index, series.to_numpy(), color=THIS)
    ax.set(xlabel=kind)
    return figure
