"""Markdown for the notes and cards the toolkit writes: values made safe for a table cell."""

from __future__ import annotations

import json
from typing import Any


def cell(value: Any) -> str:
    """A value for a markdown table cell: numbers rounded, pipes and newlines defused."""
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A markdown table; the cells must already be safe (see `cell`)."""
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines) + "\n"
