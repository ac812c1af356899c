"""The delivery toolkit, kept by the template (`cruft update` refreshes it): everything that takes
the model in src/ from a training to a running environment. Tracking and lineage, the
reproducibility check, the Bento and the image, GitOps deploy/teardown/gc behind the production
gate, the merge request report, the benchmarks. It imports the model package, never the reverse.

Each step is `python -m deploy.<step>`, called by a make target.
"""

import sys
from pathlib import Path

# The model package lives in src/. `make` puts src/ on PYTHONPATH; this makes `python -m
# deploy.<step>` work from the repository root as well (appended: PYTHONPATH still wins).
_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.append(_SRC)
