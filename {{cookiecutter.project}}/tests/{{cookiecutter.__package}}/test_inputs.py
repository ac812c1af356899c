"""A request's rows taken apart once: the numeric matrix and the categorical columns."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.__package }}.serving.inputs import Inputs


def test_numbers_and_categories_in_column_order() -> None:
    inputs = Inputs([[1.0, "paris", None], [None, None, 2.5]], [True, False, True])
    assert inputs.numbers.shape == (2, 2) and inputs.numbers.dtype == np.float64
    assert np.array_equal(inputs.numbers, [[1.0, np.nan], [np.nan, 2.5]], equal_nan=True)
    assert inputs.categories == [("paris", None)]
    assert (inputs.numeric_index, inputs.categorical_index) == ([0, 2], [1])


def test_all_numeric_rows_are_one_matrix() -> None:
    inputs = Inputs([[1.0, None], [3.0, 4.0]], [True, True])
    assert np.array_equal(inputs.numbers, [[1.0, np.nan], [3.0, 4.0]], equal_nan=True)
    assert inputs.categories == []


@pytest.mark.parametrize("numeric", [[True, True], [True, False], [False, False]])
def test_no_rows_give_empty_arrays_of_the_right_width(numeric: list[bool]) -> None:
    inputs = Inputs([], numeric)
    assert inputs.numbers.shape == (0, sum(numeric))
    assert inputs.categories == [()] * (len(numeric) - sum(numeric))


def test_the_shared_matrix_is_read_only() -> None:
    inputs = Inputs([[1.0, "paris"]], [True, False])
    with pytest.raises(ValueError, match="read-only"):
        inputs.numbers[0, 0] = 2.0
