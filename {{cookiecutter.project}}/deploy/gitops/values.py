"""One environment's chart values, checked against the chart's schema. Merged in this order,
each over the one before (mappings key by key, anything else replaced):

1. the chart's defaults (charts/bento-service/values.yaml; Helm applies them),
2. deploy/values.yaml: every environment of this project,
3. deploy/values-production.yaml or deploy/values-preview.yaml: the environment's kind,
4. the generated keys (project, environment, image, lineage, ingress.host), which always win.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError

from ..artifacts import ImageRecord
from ..naming import PRODUCTION

DEPLOY_DIR = Path(__file__).resolve().parents[1]
SCHEMA = DEPLOY_DIR / "values.schema.json"  # a copy of charts/bento-service/values.schema.json
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def parse_image(ref: str) -> ImageRecord:
    """Split `host:5000/name:tag@sha256:...` into repository, tag and digest.

    A ':' is a tag separator only after the last '/', since the host part may carry a port.
    """
    name, _, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    name, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    if not name or (digest and not DIGEST.match(digest)):
        raise ProjectError(f"--image {ref!r}: not an image reference (host/name:tag@sha256:...)")
    return ImageRecord(repository=name, tag=tag, digest=digest)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, merging nested mappings key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_overrides(path: Path) -> dict[str, Any]:
    """One file of chart values; it may be missing, or everything in it commented out."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: must be a mapping of chart values")
    return data


def overrides_files(env: str, directory: Path = DEPLOY_DIR) -> list[Path]:
    """The project's values files for `env`, lowest precedence first."""
    kind = "production" if env == PRODUCTION else "preview"
    return [directory / "values.yaml", directory / f"values-{kind}.yaml"]


def overrides_for(env: str, directory: Path = DEPLOY_DIR) -> dict[str, Any]:
    """The project's chart values for `env`: values.yaml, then the file of its kind over it."""
    merged: dict[str, Any] = {}
    for path in overrides_files(env, directory):
        merged = deep_merge(merged, load_overrides(path))
    return merged


def without_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown (None or empty) values: the chart treats absent keys as 'not given'."""
    return {key: value for key, value in mapping.items() if value not in (None, "")}


def validate(values: dict[str, Any], schema_path: Path = SCHEMA) -> None:
    """Check values against the chart's schema before anything is committed."""
    import jsonschema  # only deploy needs it; teardown and gc run without it

    if not schema_path.is_file():
        raise ProjectError(f"{schema_path}: the chart's values schema is missing")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
        raise ProjectError("values do not match the chart schema:\n" + "\n".join(lines))


def environment_values(
    project: str,
    env: str,
    host: str,
    image: ImageRecord,
    lineage: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The values file of one environment, validated. Generated keys win over the overrides
    (which may switch the ingress off) and come first in the file, for readers."""
    generated = {
        "project": project,
        "environment": env,
        "image": without_empty(
            {"repository": image.repository, "tag": image.tag, "digest": image.digest}
        ),
        "lineage": without_empty(lineage),
        "ingress": {"host": host},
    }
    base = deep_merge({"ingress": {"enabled": True}}, overrides)
    merged = deep_merge(base, generated)
    values = {key: merged[key] for key in generated} | merged
    validate(values)
    return values


def dump(values: dict[str, Any]) -> str:
    """The values file text; safe_dump only, so no value can become YAML structure or code."""
    header = "# Written by `python -m deploy.gitops deploy`; do not edit by hand.\n"
    return header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def load_values(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def same_apart_from_time(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when redeploying would change nothing but lineage.deployedAt (an idempotent deploy)."""

    def strip(values: dict[str, Any]) -> dict[str, Any]:
        lineage = {k: v for k, v in values.get("lineage", {}).items() if k != "deployedAt"}
        return {**values, "lineage": lineage}

    return bool(old) and strip(old) == strip(new)
