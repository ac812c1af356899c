"""The sample data sets, written from what scikit-learn bundles: a clone where no DVC remote is
reachable (a CI runner on the first push, say) still gets the sample CSV, byte for byte the file
its .dvc pointer names, so the pipeline trains on real data and never on nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from {{ cookiecutter.__package }}.atomic import write_bytes

# file stem -> (scikit-learn loader, target column, loader options)
SAMPLES = {
    "breast_cancer": ("load_breast_cancer", "diagnosis", {}),
    "wine": ("load_wine", "cultivar", {}),
    "diabetes": ("load_diabetes", "progression", {"scaled": False}),
}


def sample_csv(name: str) -> bytes:
    """The CSV of one sample: its features, then the target (class names for classifiers)."""
    from sklearn import datasets

    loader, target, options = SAMPLES[name]
    bunch = getattr(datasets, loader)(as_frame=True, **options)
    frame = bunch.frame.rename(columns={bunch.frame.columns[-1]: target})
    if "target_names" in bunch:
        frame[target] = [bunch.target_names[label] for label in bunch.target]
    return frame.to_csv(index=False).encode("utf-8")


def restore_sample(data: Path, md5: str) -> bool:
    """Write `data` from scikit-learn when it is a sample whose bytes have the pointer's md5."""
    if data.stem not in SAMPLES:
        return False
    content = sample_csv(data.stem)
    if hashlib.md5(content, usedforsecurity=False).hexdigest() != md5:
        return False  # changed data under a sample's name: only the DVC remote has it
    write_bytes(data, content)
    return True
