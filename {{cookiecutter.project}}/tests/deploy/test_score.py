"""`make score`: the model package's batch scoring behind the project's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.__package }}.errors import ProjectError

from deploy import score


def test_bad_input_is_one_project_error_before_any_model_loads(tmp_path: Path) -> None:
    # No model was trained here: the destination is refused before the command looks for one.
    with pytest.raises(ProjectError, match="unsupported file type '.txt'"):
        score.main(["--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.txt")])
    with pytest.raises(ProjectError, match="give INPUT="):
        score.main(["--input", str(tmp_path / "in.csv")])
