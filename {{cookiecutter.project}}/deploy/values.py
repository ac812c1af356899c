"""Build one environment's chart values from flags, pipeline artifacts and per-project overrides."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def reference(self) -> str:
        ref = self.repository + (f":{self.tag}" if self.tag else "")
        return ref + (f"@{self.digest}" if self.digest else "")


def parse_image(ref: str) -> Image:
    """Split `host:5000/name:tag@sha256:...` into repository, tag and digest.

    A ':' is a tag separator only after the last '/', since the host part may carry a port.
    """
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    else:
        tag = ""
    if not name or (digest and not DIGEST.match(digest)):
        raise ValueError(f"not an image reference: {ref!r}")
    return Image(repository=name, tag=tag, digest=digest)


def read_json(path: Path) -> dict[str, Any]:
    """A pipeline artifact such as build/lineage.json; empty when the step has not run."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def image_from_artifact(image_json: dict[str, Any]) -> Image | None:
    """The image that `make image` recorded in build/image.json, if any."""
    if image_json.get("reference"):
        return parse_image(image_json["reference"])
    if image_json.get("repository"):
        return Image(
            repository=image_json["repository"],
            tag=image_json.get("tag") or "",
            digest=image_json.get("digest") or "",
        )
    return None


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
    """Per-project chart values (deploy/values.yaml); everything in it may be commented out."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a mapping")
    return data


def without_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown (None or empty) values: the chart treats absent keys as 'not given'."""
    return {key: value for key, value in mapping.items() if value not in (None, "")}


def validate(values: dict[str, Any], schema_path: Path) -> None:
    """Check values against the chart's schema before anything is committed."""
    import jsonschema  # only deploy needs it; teardown and gc run without it

    if not schema_path.is_file():
        raise FileNotFoundError(f"chart values schema not found: {schema_path}")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
        raise ValueError("values do not match the chart schema:\n" + "\n".join(lines))


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
