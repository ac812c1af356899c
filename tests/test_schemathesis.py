"""schemathesis against the served Bento's own OpenAPI schema (/docs.json): whatever a client
sends to the prediction endpoints, valid or not, the answer is a 2xx or a 4xx naming the field,
never a 5xx. Batch records and columns also get extreme finite floats (~1e308), which overflow the
scaler."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("schemathesis")]

EXAMPLES = 300  # per operation and generation mode; the whole run stays well under 2 minutes
EXTREMES = st.sampled_from([1.7976931348623157e308, -1e308, 1e300, 5e-324])


def with_extremes(draw: st.DrawFn, body: Any) -> Any:
    """Some numeric values of a batch's records or columns replaced by extreme finite floats."""
    if not isinstance(body, dict):
        return body
    records = body.get("records") if isinstance(body.get("records"), list) else []
    columns = body.get("columns") if isinstance(body.get("columns"), dict) else {}
    for values in [*records, *columns.values()]:
        if not isinstance(values, dict | list):
            continue
        for key in values.keys() if isinstance(values, dict) else range(len(values)):
            if isinstance(values[key], float) and draw(st.booleans()):
                values[key] = draw(EXTREMES)
    return body


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/predict_columns"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_4xx_names_the_field(
    server: str, reference: dict[str, Any], path: str, mode: GenerationMode
) -> None:
    features = {feature["name"] for feature in reference["schema"]["features"]}
    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operation = schema[path]["POST"]
    answers: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        case.body = with_extremes(data.draw, case.body)
        response = case.call(base_url=server)
        status = response.status_code
        answers[status] = answers.get(status, 0) + 1
        sent = json.dumps(case.body, default=str)[:300]
        assert status < 500, f"{path} {sent} -> {status} {response.text[:300]}"
        # A refused JSON object names the field: a feature, a key it sent, `records` or `columns`
        # (413 and 415 refuse the whole body before it is parsed).
        if status in (400, 422) and isinstance(case.body, dict):
            names = {"records", "columns", *features, *case.body}
            assert any(name in response.text for name in names), f"{sent} -> {response.text[:300]}"

    check()
    # The run reached the model, and refused what it must: negative cases, and the extremes.
    assert sum(answers.values()) >= EXAMPLES // 2, answers
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in answers), answers
    if mode == GenerationMode.NEGATIVE or path != "/predict":
        assert answers.get(400), answers
