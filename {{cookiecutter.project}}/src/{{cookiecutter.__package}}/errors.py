"""User-facing failures: one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class ProjectError(Exception):
    """A problem the user can fix (bad data, bad params); the message names file and cause."""


def run(main: Callable[[], object]) -> None:
    """Run a command-line entry point, turning ProjectError into `error: ...` and exit code 1."""
    try:
        main()
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
