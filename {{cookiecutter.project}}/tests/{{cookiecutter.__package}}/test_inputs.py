"""A request's values taken apart once: the numeric matrix and the categorical columns, from
records or from columns."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.__package }}.serving.inputs import Inputs


def test_numbers_and_categories_in_column_order() -> None:
    inputs = Inputs.from_rows([[1.0, "paris", None], [None, None, 2.5]], [True, False, True])
    assert inputs.numbers.shape == (2, 2) and inputs.numbers.dtype == np.float64
    assert np.array_equal(inputs.numbers, [[1.0, np.nan], [np.nan, 2.5]], equal_nan=True)
    assert inputs.categories == [("paris", None)]
    assert (inputs.numeric_index, inputs.categorical_index) == ([0, 2], [1])


def test_all_numeric_rows_are_one_matrix() -> None:
    inputs = Inputs.from_rows([[1.0, None], [3.0, 4.0]], [True, True])
    assert np.array_equal(inputs.numbers, [[1.0, np.nan], [3.0, 4.0]], equal_nan=True)
    assert inputs.categories == []


@pytest.mark.parametrize("numeric", [[True, True], [True, False], [False, False]])
def test_no_rows_give_empty_arrays_of_the_right_width(numeric: list[bool]) -> None:
    inputs = Inputs.from_rows([], numeric)
    assert inputs.numbers.shape == (0, sum(numeric))
    assert inputs.categories == [()] * (len(numeric) - sum(numeric))


def test_the_shared_matrix_is_read_only() -> None:
    inputs = Inputs.from_rows([[1.0, "paris"]], [True, False])
    with pytest.raises(ValueError, match="read-only"):
        inputs.numbers[0, 0] = 2.0


def test_columns_give_what_their_rows_give() -> None:
    rows = [[1.0, "paris", None], [None, None, 2.5], [3.0, "lyon", 4.0]]
    numeric = [True, False, True]
    by_rows = Inputs.from_rows(rows, numeric)
    by_columns = Inputs.from_columns([list(column) for column in zip(*rows, strict=True)], numeric)
    assert np.array_equal(by_columns.numbers, by_rows.numbers, equal_nan=True)
    assert [list(c) for c in by_columns.categories] == [list(c) for c in by_rows.categories]
    assert len(by_columns) == len(by_rows) == 3
    assert by_columns.rows == rows  # rebuilt for the prediction log, null as None


@pytest.mark.parametrize("numeric", [[True, True], [False, False]])
def test_columns_of_a_single_kind(numeric: list[bool]) -> None:
    values = [[1.0, None], [2.0, 3.0]] if all(numeric) else [["a", None], ["b", "c"]]
    inputs = Inputs.from_columns(values, numeric)
    assert inputs.numbers.shape == (2, sum(numeric)) and len(inputs) == 2
    assert inputs.rows == [list(row) for row in zip(*values, strict=True)]
