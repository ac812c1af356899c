"""One environment's chart values: generated keys (project, environment, image, lineage, host)
over the per-project overrides in deploy/values.yaml, checked against the chart's schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError

from ..artifacts import ImageRecord

DEPLOY_DIR = Path(__file__).resolve().parents[1]
SCHEMA = DEPLOY_DIR / "values.schema.json"  # a copy of charts/bento-service/values.schema.json
OVERRIDES = DEPLOY_DIR / "values.yaml"
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


def load_overrides(path: Path = OVERRIDES) -> dict[str, Any]:
    """Per-project chart values; everything in the file may be commented out."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: must be a mapping of chart values")
    return data


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
