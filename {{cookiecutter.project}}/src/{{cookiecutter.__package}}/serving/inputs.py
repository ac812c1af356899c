"""One request's values taken apart once, for everything that reads them: the range check, the
NumPy preprocessing and the prediction metrics.

Turning 1,000 records of Python values into arrays is most of a batch's cost next to the model
(which takes ~4 ms on them), so it is done once per request and the arrays are shared, read-only.
A columnar request (/predict_columns) arrives as columns already and skips the regrouping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

Rows = list[list[Any]]  # records as values in the training column order; None for null
Columns = list[Sequence[Any]]  # one sequence of values per feature, in the training column order


class Inputs:
    """The numeric columns as one float64 matrix (NaN for null) and the categorical columns as
    sequences of values (None for null), both in the training column order; the rows too, for
    the consumers that want records (the prediction log, a pipeline served as it is)."""

    def __init__(self, numbers: np.ndarray, categories: Columns, numeric: list[bool]) -> None:
        self.numeric_index = [i for i, is_numeric in enumerate(numeric) if is_numeric]
        self.categorical_index = [i for i, is_numeric in enumerate(numeric) if not is_numeric]
        self.numbers = numbers
        self.numbers.flags.writeable = False  # shared: a consumer changing it would skew the next
        self.categories = categories

    @classmethod
    def from_rows(cls, rows: Rows, numeric: list[bool]) -> Inputs:
        if all(numeric):  # all-numeric data: one conversion of the whole list, several times faster
            numbers = np.array(rows, dtype=np.float64).reshape((len(rows), len(numeric)))
            inputs = cls(numbers, [], numeric)
        else:
            inputs = cls.from_columns(list(zip(*rows, strict=True)) or [()] * len(numeric), numeric)
        inputs.rows = rows  # what cached_property would compute: the rows as given
        return inputs

    @classmethod
    def from_columns(cls, columns: Columns, numeric: list[bool]) -> Inputs:
        """At least one column, all of the same length (the request model checks it)."""
        count, kinds = len(columns[0]), list(zip(columns, numeric, strict=True))
        numbers = np.array([c for c, n in kinds if n], dtype=np.float64).T
        categories = [c for c, n in kinds if not n]
        return cls(numbers.reshape((count, sum(numeric))), categories, numeric)  # (0, k), (n, 0)

    def __len__(self) -> int:
        return self.numbers.shape[0]

    @cached_property
    def rows(self) -> Rows:
        columns: list[Sequence[Any]] = [()] * (len(self.numeric_index) + len(self.categories))
        for j, i in enumerate(self.numeric_index):
            columns[i] = [None if math.isnan(v) else v for v in self.numbers[:, j].tolist()]
        for values, i in zip(self.categories, self.categorical_index, strict=True):
            columns[i] = values
        return [list(row) for row in zip(*columns, strict=True)]
