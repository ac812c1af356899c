"""The OCI image layout the image is assembled in (OCI image spec, "image-layout"): skopeo copies
the base image into it, the build adds its layers, configuration and manifest beside the base's
blobs and names the manifest in index.json, skopeo pushes it from there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def blobs(layout: Path) -> Path:
    directory = layout / "blobs" / "sha256"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, encoded = digest.partition(":")
    return layout / "blobs" / algorithm / encoded


def read_json(layout: Path, digest: str) -> dict:
    return json.loads(blob_path(layout, digest).read_bytes())


def write_json(layout: Path, media_type: str, value: dict) -> dict:
    """Store `value` as a blob (compact JSON: the same value, the same digest); its descriptor."""
    data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    (blobs(layout) / digest.removeprefix("sha256:")).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def manifest(layout: Path, name: str) -> tuple[dict, dict]:
    """The descriptor and the manifest named `name` in the layout's index."""
    index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    for descriptor in index.get("manifests", []):
        if (descriptor.get("annotations") or {}).get(REF_NAME) == name:
            if descriptor.get("mediaType") != MANIFEST:
                raise ProjectError(
                    f"{name}: a {descriptor.get('mediaType')}, not an image manifest"
                )
            return descriptor, read_json(layout, descriptor["digest"])
    raise ProjectError(f"no image {name!r} in the OCI layout {layout}")


def tag(layout: Path, descriptor: dict, name: str) -> None:
    """Name a manifest in the layout's index (skopeo finds it as oci:<layout>:<name>)."""
    path = layout / "index.json"
    index = json.loads(path.read_text(encoding="utf-8"))
    index["manifests"].append({**descriptor, "annotations": {REF_NAME: name}})
    path.write_text(json.dumps(index, separators=(",", ":")), encoding="utf-8")
