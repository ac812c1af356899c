"""The service's request and response models come from schema.json: check the derivation, and
the request guard in front of it.

Fast, no server: the service module is imported against a throwaway BentoML store that holds
only a schema.json and a model card (the model itself is loaded when a worker starts).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import os
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from {{ cookiecutter.__package }}.serving.api import column_predictions_model, prediction_model
from {{ cookiecutter.__package }}.serving.guard import RequestGuard
from {{ cookiecutter.__package }}.serving.runtime import MAX_BATCH

SCHEMA = {
    "target": "label",
    "task": "classification",
    "features": [
        {"name": "age", "kind": "numeric"},
        {"name": "income k$", "kind": "numeric"},
        {"name": "city", "kind": "categorical", "categories": ["lyon", "nice", "paris"]},
    ],
    "classes": ["no", "yes"],
}
RECORD = {"age": 42.0, "income k$": 51.5, "city": "paris"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The service module, imported against a store whose latest model has SCHEMA."""
    # BentoML reads BENTOML_HOME on first use of a store, so set it before anything touches one.
    os.environ["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml"))
    import bentoml

    with bentoml.models.create("{{ cookiecutter.project }}") as model:
        Path(model.path_of("schema.json")).write_text(json.dumps(SCHEMA), encoding="utf-8")
        Path(model.path_of("model_card.md")).write_text("# Model card: x\n", encoding="utf-8")
    return importlib.import_module("{{ cookiecutter.__package }}.service")


def test_the_model_card_is_served_from_the_store(service: ModuleType) -> None:
    answer = asyncio.run(service.model_card(None))
    assert answer.status_code == 200 and answer.body == b"# Model card: x\n"
    assert answer.media_type == "text/plain"


def errors(model: type, payload: object) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(json.dumps(payload))
    return caught.value.errors()


def test_import_derives_request_model_from_store(service: ModuleType) -> None:
    assert service.API.columns == ["age", "income k$", "city"]
    properties = service.Record.model_json_schema(by_alias=True)["properties"]
    assert list(properties) == service.API.columns
    assert service.Record.model_validate(RECORD).model_dump() == RECORD


def test_rows_follow_the_column_order_not_the_json_order(service: ModuleType) -> None:
    backwards = json.dumps(dict(reversed(RECORD.items())))
    record = service.Record.model_validate_json(backwards)
    assert service.API.rows([record, record]) == [list(RECORD.values())] * 2


def test_every_feature_is_required_but_may_be_null(service: ModuleType) -> None:
    missing = {key: value for key, value in RECORD.items() if key != "income k$"}
    [error] = errors(service.Record, missing)
    assert (error["type"], error["loc"]) == ("missing", ("income k$",))
    nulls = dict.fromkeys(RECORD)
    assert service.Record.model_validate(nulls).model_dump() == nulls


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("age", "42", "float_type"),  # strict: no string-to-number coercion
        ("age", True, "float_type"),
        ("age", [1], "float_type"),
        ("income k$", 1e400, "finite_number"),  # JSON overflow -> inf
        ("city", "rome", "literal_error"),
        ("city", 3, "literal_error"),
    ],
)
def test_wrong_values_name_the_field(service: ModuleType, field: str, value, kind: str) -> None:
    [error] = errors(service.Record, {**RECORD, field: value})
    assert (error["type"], error["loc"]) == (kind, (field,))


def test_nan_is_refused(service: ModuleType) -> None:
    with pytest.raises(ValidationError, match="income k\\$"):
        service.Record.model_validate_json(json.dumps({**RECORD, "income k$": math.nan}))


def test_extra_fields_are_refused(service: ModuleType) -> None:
    [error] = errors(service.Record, {**RECORD, "label": "yes"})
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("label",))


def test_batch_bounds(service: ModuleType) -> None:
    assert errors(service.Batch, {"records": []})[0]["type"] == "too_short"
    too_many = {"records": [RECORD] * (MAX_BATCH + 1)}
    assert errors(service.Batch, too_many)[0]["type"] == "too_long"
    assert len(service.Batch.model_validate({"records": [RECORD] * 3}).records) == 3


COLUMNS = {"age": [42.0, None], "income k$": [51.5, 60.0], "city": ["paris", None]}


def test_a_columnar_batch_gives_its_values_in_column_order(service: ModuleType) -> None:
    backwards = json.dumps({"columns": dict(reversed(COLUMNS.items()))})
    batch = service.ColumnBatch.model_validate_json(backwards)
    assert service.API.column_values(batch) == list(COLUMNS.values())


@pytest.mark.parametrize(
    ("columns", "kind", "loc"),
    [
        ({**COLUMNS, "age": [1.0]}, "value_error", ("columns",)),  # lengths differ
        ({**COLUMNS, "age": []}, "too_short", ("columns", "age")),
        ({**COLUMNS, "city": ["paris", "rome"]}, "literal_error", ("columns", "city", 1)),
        ({**COLUMNS, "age": ["42", 1.0]}, "float_type", ("columns", "age", 0)),
        ({k: v for k, v in COLUMNS.items() if k != "city"}, "missing", ("columns", "city")),
        ({**COLUMNS, "label": ["yes", "no"]}, "extra_forbidden", ("columns", "label")),
    ],
)
def test_a_bad_columnar_batch_names_the_column(
    service: ModuleType, columns: dict, kind: str, loc: tuple
) -> None:
    [error] = errors(service.ColumnBatch, {"columns": columns})
    assert (error["type"], error["loc"]) == (kind, loc)
    if kind == "value_error":
        assert "same number of values: 'income k$' has 2, 'age' has 1" in error["msg"]


def test_columns_are_bounded_by_the_batch_limit(service: ModuleType) -> None:
    too_many = {name: values[:1] * (MAX_BATCH + 1) for name, values in COLUMNS.items()}
    assert errors(service.ColumnBatch, {"columns": too_many})[0]["type"] == "too_long"


def test_regression_schema_has_no_probabilities() -> None:
    regression = {**SCHEMA, "task": "regression"}
    del regression["classes"]
    assert set(prediction_model(regression).model_fields) == {"prediction"}
    assert set(prediction_model(SCHEMA).model_fields) == {"prediction", "probabilities"}
    columnar = column_predictions_model(regression).model_fields
    assert set(columnar) == {"predictions", "model_version"}


async def guard(chunks: list[bytes], headers: list) -> tuple[list, list]:
    """Run RequestGuard (limit: 10 bytes) over a POST; returns what it sent and what the app read."""
    sent, reached = [], []
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def app(scope: dict, receive, send) -> None:
        reached.append((await receive())["body"])

    async def receive() -> dict:
        return pending.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    await RequestGuard(app, max_bytes=10)(scope, receive, send)
    return sent, reached


def test_guard_passes_small_json_bodies() -> None:
    sent, reached = asyncio.run(guard([b"12345", b"67890"], []))
    assert (sent, reached) == ([], [b"12345"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 413),  # chunked, over the limit
        ([(b"content-length", b"12")], 413),
        ([(b"content-type", b"multipart/form-data; boundary=x")], 415),
    ],
)
def test_guard_refuses(headers: list, status: int) -> None:
    sent, reached = asyncio.run(guard([b"123456", b"789012"], headers))
    assert sent[0]["status"] == status and reached == []
