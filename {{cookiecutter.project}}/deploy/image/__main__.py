"""`make image`: build the service image from the built Bento, push it, and record it.

The image is the base image plus two layers: the runtime (the venv and the service user) and the
service (the Bento with its models). It is tagged with the short commit SHA, pushed to
IMAGE_REPOSITORY, and build/image.json records the pushed digest, which is what deploys
reference. When the registry already holds that tag built from the same commit, model and base
(skopeo reads its labels), nothing is built and its digest is recorded.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError, run

from .. import model_card
from ..artifacts import BentoRecord, ImageRecord
from ..commands import git_output, head_commit
from ..settings import load_settings
from ..urls import redact
from . import oci, recipe, registry, venv
from .base import BaseFiles, search_path
from .layers import Layer, LayerBlob

# Debian-based, like the base image made by the template's scripts/base_image.sh.
DEFAULT_BASE_IMAGE = "docker.io/library/python:{python}-slim-bookworm"
# Equal on these, an image in the registry is this build: same commit (hence code and lock), same
# model, same base. Re-running a pipeline then skips the build.
SAME_BUILD = (
    "org.opencontainers.image.revision",
    "org.opencontainers.image.base.name",
    "mlflow.run-id",
    "mlflow.model-version",
)


def source_url(root: Path) -> str:
    """The repository URL for the OCI source label, without any credentials in it."""
    if os.environ.get("CI_PROJECT_URL"):
        return os.environ["CI_PROJECT_URL"]
    if os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{os.environ['GITHUB_REPOSITORY']}"
    remote = git_output(root, "remote", "get-url", "origin")
    return redact(remote) if remote else root.resolve().as_uri()


def base_image(root: Path) -> str:
    python = (root / ".python-version").read_text(encoding="utf-8").strip()
    return os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE.format(python=python)


def commit_time(root: Path, commit: str) -> str:
    """The commit's time, the image's creation time: the same commit builds the same image."""
    seconds = git_output(root, "show", "--no-patch", "--format=%ct", commit)
    if not seconds:
        raise ProjectError(f"commit {commit} is not in this checkout: fetch it first")
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels(root: Path, commit: str, created: str, bento: BentoRecord) -> dict[str, str]:
    """OCI labels plus the lineage of the model inside (the Bento's)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    values = {
        "org.opencontainers.image.title": project["name"],
        "org.opencontainers.image.description": project.get("description", ""),
        "org.opencontainers.image.base.name": base_image(root),
        "org.opencontainers.image.source": source_url(root),
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.version": commit[:8],
        "mlflow.run-id": bento.mlflow_run_id,
        "mlflow.model-name": bento.model_name,
        "mlflow.model-version": bento.model_version,
        "bentoml.tag": bento.tag,
        "dvc.data-md5": bento.data_md5,
    }
    return {key: value for key, value in values.items() if value}


def runtime_layer(files: BaseFiles, venv_dir: Path) -> Layer:
    """The venv and the service user: the same for every commit with the same lock and base."""
    layer = Layer(files.kind)
    layer.file("/etc/passwd", files.with_entry("etc/passwd", recipe.PASSWD_ENTRY))
    layer.file("/etc/group", files.with_entry("etc/group", recipe.GROUP_ENTRY))
    layer.tree(recipe.VENV, venv_dir)
    return layer


def service_layer(files: BaseFiles, bento: BentoRecord) -> Layer:
    """The Bento with its models under models/, where a Bento served from a directory loads them.

    `bentoml build` keeps models in the BentoML store next to the bento (<home>/bentos/<name>/<v>
    and <home>/models/<name>/<v>).
    """
    bento_dir = Path(bento.path)
    layer = Layer(files.kind)
    layer.tree(recipe.BENTO, bento_dir, exclude=frozenset({"__pycache__"}))
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text(encoding="utf-8"))
    tags = {m["tag"] for m in info.get("models", [])}
    tags |= {m["tag"] for service in info.get("services", []) for m in service.get("models", [])}
    store = bento_dir.parents[2] / "models"
    for tag in sorted(tags):
        name, version = tag.split(":")
        source = store / name / version
        if not source.is_dir():
            raise ProjectError(
                f"model {tag} of the Bento is not in {store}: run `make bento` again"
            )
        layer.tree(f"{recipe.BENTO}/models/{name}/{version}", source)
        layer.file(f"{recipe.BENTO}/models/{name}/latest", version.encode("utf-8"))
    return layer


def megabytes(blob: LayerBlob) -> str:
    return f"{blob.descriptor['size'] / 1e6:.2f} MB"


def build(root: Path, bento: BentoRecord, work: Path, image_labels: dict[str, str]) -> Path:
    """Assemble the image in an OCI layout under `work` (named "image" there); the layout."""
    base = base_image(root)
    layout = work / "oci"
    registry.pull(base, layout, "base")
    base_descriptor, base_manifest = oci.manifest(layout, "base")
    base_config = oci.read_json(layout, base_manifest["config"]["digest"])
    layers = [oci.blob_path(layout, layer["digest"]) for layer in base_manifest["layers"]]
    files = BaseFiles(base, layers)
    python = files.python(search_path(base_config))
    platform = files.platform(base_config.get("architecture", ""))
    print(f"image: {base}: Python {python.version} ({python.path}), {platform}", flush=True)

    venv.build(root, work / "venv", python, platform)
    runtime = runtime_layer(files, work / "venv").write(layout)
    service = service_layer(files, bento).write(layout)
    print(f"image: layers {megabytes(runtime)} (venv), {megabytes(service)} (Bento)", flush=True)

    config = recipe.config(
        base_config,
        {**image_labels, "org.opencontainers.image.base.digest": base_descriptor["digest"]},
        image_labels["org.opencontainers.image.created"],
        [
            (runtime.diff_id, f"make image: {recipe.VENV} (uv.lock), /etc/passwd, /etc/group"),
            (service.diff_id, f"make image: {recipe.BENTO} ({bento.tag})"),
        ],
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST,
        "config": oci.write_json(layout, oci.CONFIG, config),
        "layers": [*base_manifest["layers"], runtime.descriptor, service.descriptor],
    }
    oci.tag(layout, oci.write_json(layout, oci.MANIFEST, manifest), "image")
    return layout


def main() -> None:
    settings = load_settings()
    root = settings.root
    bento = BentoRecord.require(root)
    repository = settings.image_repository.rstrip("/")
    if not repository:
        raise ProjectError(
            "no image repository: set IMAGE_REPOSITORY or [tool.mlops] image-repository"
        )
    commit = head_commit(root)
    if not commit:
        raise ProjectError("no git commit to tag the image with: commit first")
    tag = commit[:8]
    image = f"{repository}:{tag}"
    image_labels = labels(root, commit, commit_time(root, commit), bento)
    with tempfile.TemporaryDirectory(prefix="image-") as scratch:
        work = Path(scratch)
        auth = registry.authfile(repository.split("/")[0], work)
        found = registry.pushed(image, auth) or {}
        found_labels = found.get("Labels") or {}
        if found and all(found_labels.get(k) == image_labels.get(k) for k in SAME_BUILD):
            digest = found["Digest"]
            print(
                f"{image} is already this build (commit, model and base): not rebuilt", flush=True
            )
        else:
            layout = build(root, bento, work, image_labels)
            digest = registry.push(layout, "image", image, auth)
    record = ImageRecord(
        repository=repository,
        tag=tag,
        digest=digest,
        mlflow_run_id=bento.mlflow_run_id,
        model_version=bento.model_version,
    )
    record.write(root)
    print(f"{image} is {record.reference} (build/image.json)")
    print(model_card.log(root, settings.mlflow_tracking_uri))  # the card gains the digest


if __name__ == "__main__":
    run(main)
