"""One environment's chart values (deploy/gitops/values.py): generated keys win, the chart's
schema is enforced before anything is written, and user strings stay data."""

from __future__ import annotations

import pytest
import yaml

from {{ cookiecutter.__package }}.errors import ProjectError

from deploy.artifacts import ImageRecord
from deploy.gitops import values

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRecord(repository="127.0.0.1:5000/model", tag="3f2a1b4c", digest=DIGEST)
HOSTILE = "feat/x \"q\" 'a' $HOME `id` {{ '{{' }} .Values.x {{ '}}' }} ${x}: [a, b] # c\n- y"


@pytest.mark.parametrize(
    ("ref", "repository", "tag", "digest"),
    [
        ("host:5000/team/model:abc@" + DIGEST, "host:5000/team/model", "abc", DIGEST),
        ("host:5000/team/model@" + DIGEST, "host:5000/team/model", "", DIGEST),
        ("host:5000/model:abc", "host:5000/model", "abc", ""),
        ("host:5000/model", "host:5000/model", "", ""),  # a port is not a tag
    ],
)
def test_parse_image(ref: str, repository: str, tag: str, digest: str) -> None:
    assert values.parse_image(ref) == ImageRecord(repository=repository, tag=tag, digest=digest)


@pytest.mark.parametrize("ref", ["", "model@sha256:short", "@" + DIGEST])
def test_bad_image_references_are_refused(ref: str) -> None:
    with pytest.raises(ProjectError, match="--image"):
        values.parse_image(ref)


def environment(overrides: dict | None = None, **lineage) -> dict:
    host = "model-feat-x.preview.localhost"
    lineage = {"branch": "feat/x", **lineage}
    return values.environment_values("model", "feat-x", host, IMAGE, lineage, overrides or {})


def test_generated_keys_come_first_and_win_over_overrides(tmp_path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("replicaCount: 2\nproject: not-this\ningress: {enabled: false}\n")
    written = environment(values.load_overrides(path), modelVersion="3", mlflowRunId=None)
    assert list(written)[:5] == ["project", "environment", "image", "lineage", "ingress"]
    assert written["project"] == "model" and written["replicaCount"] == 2
    assert written["ingress"] == {"enabled": False, "host": "model-feat-x.preview.localhost"}
    assert written["image"] == {"repository": IMAGE.repository, "tag": IMAGE.tag, "digest": DIGEST}
    assert "mlflowRunId" not in written["lineage"]  # unknown values are left out


def test_values_outside_the_chart_schema_are_refused_naming_the_key() -> None:
    with pytest.raises(ProjectError, match="replicaCount"):
        environment({"replicaCount": "many"})


@pytest.mark.parametrize("env", ["production", "feat-x"])
def test_the_shipped_overrides_files_are_valid(env: str) -> None:
    environment(values.overrides_for(env))


def test_the_environment_kind_file_goes_over_values_yaml_and_generated_keys_over_both(
    tmp_path,
) -> None:
    (tmp_path / "values.yaml").write_text(
        "replicaCount: 2\nnodeSelector: {pool: models}\nbento: {workers: 2}\n"
    )
    (tmp_path / "values-production.yaml").write_text(
        "replicaCount: 4\nbento: {service: Model}\nproject: not-this\n"
    )
    (tmp_path / "values-preview.yaml").write_text("replicaCount: 1\n")
    production = values.overrides_for("production", tmp_path)
    preview = values.overrides_for("feat-x", tmp_path)
    assert production["replicaCount"] == 4 and preview["replicaCount"] == 1
    assert production["bento"] == {"workers": 2, "service": "Model"}  # merged key by key
    assert production["nodeSelector"] == preview["nodeSelector"] == {"pool": "models"}
    assert environment(production)["project"] == "model"


def test_a_missing_kind_file_is_no_override(tmp_path) -> None:
    (tmp_path / "values.yaml").write_text("replicaCount: 2\n")
    assert values.overrides_for("production", tmp_path) == {"replicaCount": 2}


def test_branch_names_stay_data_in_the_values_file() -> None:
    text = values.dump(environment(branch=HOSTILE))
    assert yaml.safe_load(text)["lineage"]["branch"] == HOSTILE


def test_a_redeploy_of_the_same_values_is_nothing_to_do() -> None:
    first = environment(deployedAt="2026-01-01T00:00:00Z")
    again = environment(deployedAt="2026-02-01T00:00:00Z")
    assert values.same_apart_from_time(first, again)
    assert not values.same_apart_from_time(first, environment(modelVersion="4"))
    assert not values.same_apart_from_time({}, first)
