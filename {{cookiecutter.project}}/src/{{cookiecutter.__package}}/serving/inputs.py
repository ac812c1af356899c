"""One request's rows taken apart once, for everything that reads them: the range check, the NumPy
preprocessing and the prediction metrics.

Turning 1,000 records of Python values into arrays is most of a batch's cost next to the model
(which takes ~4 ms on them), so it is done once per request and the arrays are shared, read-only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Rows = list[list[Any]]  # records as values in the training column order; None for null


class Inputs:
    """The rows, their numeric columns as one float64 matrix (NaN for null) and their categorical
    columns as tuples of values (None for null), both in the training column order."""

    def __init__(self, rows: Rows, numeric: list[bool]) -> None:
        self.rows = rows
        self.numeric_index = [i for i, is_numeric in enumerate(numeric) if is_numeric]
        self.categorical_index = [i for i, is_numeric in enumerate(numeric) if not is_numeric]
        shape = (len(rows), len(self.numeric_index))
        if self.categorical_index:
            columns = list(zip(*rows, strict=True)) or [()] * len(numeric)
            numbers = np.array([columns[i] for i in self.numeric_index], dtype=np.float64).T
            self.categories = [columns[i] for i in self.categorical_index]
        else:  # all-numeric data: one conversion of the whole list, several times faster
            numbers = np.array(rows, dtype=np.float64)
            self.categories = []
        self.numbers = numbers.reshape(shape)  # (0, k) or (n, 0) too
        self.numbers.flags.writeable = False  # shared: a consumer changing it would skew the next
