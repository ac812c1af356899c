"""Re-lock the generated project's dependencies and store the lock in the template.

uv.lock names the project itself, so the stored copy has that one name templated. The stored
lock is the starting point: versions that still satisfy pyproject.toml stay as they are.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
LOCK = TEMPLATE / "{{cookiecutter.project}}" / "uv.lock"
PLACEHOLDER = "lock-placeholder-project"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(
            cookiecutter(
                str(TEMPLATE), no_input=True, output_dir=tmp, extra_context={"project": PLACEHOLDER}
            )
        )
        subprocess.run(["uv", "lock", "--quiet"], cwd=project, check=True)
        lock = (project / "uv.lock").read_text(encoding="utf-8")
    if "{{" in lock or "{%" in lock:
        sys.exit("uv.lock contains Jinja syntax; it cannot be stored as a template")
    count = len(re.findall(rf'^name = "{PLACEHOLDER}"$', lock, flags=re.MULTILINE))
    if count != 1 or lock.count(PLACEHOLDER) != 1:
        sys.exit(
            f"expected the project name exactly once in uv.lock, found {lock.count(PLACEHOLDER)}"
        )
    LOCK.write_text(lock.replace(PLACEHOLDER, "{{ cookiecutter.project }}"), encoding="utf-8")
    print(f"wrote {LOCK.relative_to(TEMPLATE)}")


if __name__ == "__main__":
    main()
