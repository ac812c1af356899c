"""Derived features: columns computed from the raw ones, as the model's first step.

Because the model computes them, training, evaluation, `make reproduce` and the service all do
it the same way, and the API keeps taking the raw columns. Add one by name, for example:

    DERIVED["area per radius"] = lambda frame: frame["mean area"] / frame["mean radius"]

A derived feature is numeric (imputed and scaled like the other numeric columns). With none
defined the model has no features step, and the service keeps its NumPy fast path.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {}


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw feature columns plus every derived one, in the order of DERIVED."""
    return frame.assign(**{name: compute(frame) for name, compute in DERIVED.items()})
