"""The served model: `make bento` from the MLflow registry, `make serve`, and the HTTP API.

One trained project is packaged once; the Bento is served once per module (as a subprocess on a
free port) and every test talks HTTP to it, from this venv (no scikit-learn or MLflow here: the
in-process reference answers come from tests/helpers/service_inprocess.py run in the project's
venv).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.bento_service import STARTUP_SECONDS, get, post, post_json
from helpers.charts import (
    BENTO_CHART,
    alert_selectors,
    dashboard_selectors,
    load_values,
    one,
    render_bento,
)
from helpers.project import copy_project, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# One group: under `pytest -n`, the module's Bento and server are built once, on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]

MAX_BATCH = 1000  # the service's default SERVICE_MAX_BATCH
MAX_BODY_BYTES = 4 * 1024 * 1024  # the service's default SERVICE_MAX_BODY_BYTES


@pytest.fixture(scope="module")
def record(reference: dict[str, Any]) -> dict[str, Any]:
    return reference["records"][0]


def test_bento_json_and_labels_carry_lineage(
    bento_project: tuple[Path, dict[str, str]], reference: dict[str, Any]
) -> None:
    project, _ = bento_project
    built = json.loads((project / "build" / "bento.json").read_text())
    bento_yaml = yaml.safe_load((Path(built["path"]) / "bento.yaml").read_text())
    lineage = reference["lineage"]
    assert built["tag"] == f"{bento_yaml['name']}:{bento_yaml['version']}"
    for key in ("mlflow_run_id", "model_version", "model_alias", "git_commit", "data_md5"):
        assert bento_yaml["labels"][key] == lineage[key], key
    requirements = (Path(built["path"]) / "env/python/requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "mlflow" not in requirements


def test_the_bento_carries_only_what_serving_imports(
    bento_project: tuple[Path, dict[str, str]],
) -> None:
    """The service, its serving/ machinery and the derived features the model calls: not the
    training stages, and none of the delivery toolkit."""
    project, _ = bento_project
    src = Path(json.loads((project / "build" / "bento.json").read_text())["path"]) / "src"
    package = "breast_cancer_classifier"
    shipped = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    modules = ("__init__", "service", "features") + tuple(
        f"serving/{name}"
        for name in (
            "__init__",
            "api",
            "batch",
            "fastpath",
            "guard",
            "inputs",
            "metrics",
            "predlog",
            "runtime",
        )
    )
    # bentofile.yaml: BentoML keeps the build's own configuration beside the code.
    assert shipped == {"bentofile.yaml"} | {f"{package}/{module}.py" for module in modules}


def test_an_earlier_bento_serves_its_own_model_from_a_store_with_newer_ones(
    bento_project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`make serve` of an older Bento, or the demo's rollback, must not serve the newest model."""
    project, env = bento_project
    first = json.loads((project / "build" / "bento.json").read_text())
    store = tmp_path / "bentoml"
    shutil.copytree(env["BENTOML_HOME"], store)
    env = {**env, "BENTOML_HOME": str(store)}
    newer = copy_project(project, tmp_path)
    params = newer / "params.yaml"
    params.write_text(re.sub(r"(?m)^(\s+C:).*$", r"\1 0.5", params.read_text()))
    run(["git", "commit", "--quiet", "--no-verify", "-am", "C: 0.5"], newer, env)
    run(["make", "train", "bento"], newer, env)
    second = json.loads((newer / "build" / "bento.json").read_text())
    assert second["bento_model"] != first["bento_model"]
    python = Path(env["UV_PROJECT_ENVIRONMENT"]) / "bin" / "python"
    code = "import bentoml, sys; print(bentoml.load(sys.argv[1]).models[0].stored.tag)"
    for bento in (first, second):
        served = run([str(python), "-c", code, bento["tag"]], tmp_path, env).stdout.split()[-1]
        assert served == bento["bento_model"], bento["tag"]


def test_predict_matches_in_process(server: str, reference: dict[str, Any]) -> None:
    for index in range(3):
        status, answer = post_json(f"{server}/predict", reference["records"][index])
        assert status == 200, answer
        assert answer["prediction"] == reference["predictions"][index]
        assert answer["model_version"] == reference["lineage"]["model_version"]
        if reference["probabilities"]:
            expected = dict(zip(reference["classes"], reference["probabilities"][index]))
            assert answer["probabilities"] == pytest.approx(expected, rel=1e-9)


def test_predict_batch_matches_in_process(server: str, reference: dict[str, Any]) -> None:
    status, answer = post_json(f"{server}/predict_batch", {"records": reference["records"]})
    assert status == 200, answer
    assert [p["prediction"] for p in answer["predictions"]] == reference["predictions"]
    assert answer["model_version"] == reference["lineage"]["model_version"]


def test_predict_columns_matches_in_process(server: str, reference: dict[str, Any]) -> None:
    names = [feature["name"] for feature in reference["schema"]["features"]]
    columns = {name: [record[name] for record in reference["records"]] for name in names}
    status, answer = post_json(f"{server}/predict_columns", {"columns": columns})
    assert status == 200, answer
    assert answer["predictions"] == reference["predictions"]
    assert answer["model_version"] == reference["lineage"]["model_version"]
    for index, expected in enumerate(reference["probabilities"] or []):
        got = [answer["probabilities"][label][index] for label in reference["classes"]]
        assert got == pytest.approx(expected, rel=1e-9)


def test_readme_curl_example_works(
    server: str, bento_project: tuple[Path, dict[str, str]], reference: dict[str, Any]
) -> None:
    """The generated README's curl example, sent as written, answers with a prediction."""
    project, _ = bento_project
    readme = (project / "README.md").read_text()
    body = re.search(r"/predict -H 'Content-Type: application/json' -d '(.*?)'", readme, re.DOTALL)
    assert body, "the README shows no curl example for /predict"
    status, answer = post(f"{server}/predict", body.group(1).encode())
    assert status == 200, answer
    assert answer["prediction"] in reference["classes"]


def test_metadata_matches_mlflow(server: str, reference: dict[str, Any]) -> None:
    status, answer = post(f"{server}/metadata", b"")
    assert status == 200, answer
    for key, value in reference["lineage"].items():
        assert answer[key] == value, key


def test_the_model_card_is_served_read_only(server: str, reference: dict[str, Any]) -> None:
    """GET /model-card: the card `make train` logged with the run, packaged in the Bento."""
    lineage = reference["lineage"]
    with urllib.request.urlopen(f"{server}/model-card", timeout=5) as response:
        assert response.headers.get_content_type() == "text/plain"
        card = response.read().decode()
    name = f"# Model card: {lineage['model_name']} version {lineage['model_version']}\n"
    assert card.startswith(name) and lineage["mlflow_run_id"] in card
    assert "## Intended use" in card and "## Limitations" in card
    assert post(f"{server}/model-card", b"")[0] == 405


def test_workers_serve_through_the_numpy_fast_path(
    server: str, bento_project: tuple[Path, dict[str, str]]
) -> None:
    """The default model's preprocessing runs as NumPy (proven equal at load), in every worker."""
    project, _ = bento_project
    fast = "model input: NumPy preprocessing, checked equal"
    deadline = time.monotonic() + STARTUP_SECONDS  # /readyz answers once one worker is up
    while True:
        log = (project / "build" / "serve.log").read_text(errors="replace")
        if log.count(fast) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert log.count(fast) == 2, log[-3000:]
    assert "model input: pipeline" not in log


def test_health_and_metrics(server: str, record: dict[str, Any]) -> None:
    assert get(f"{server}/livez") == 200
    assert get(f"{server}/readyz") == 200
    post_json(f"{server}/predict", record)
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'model_predictions_total{endpoint="predict",outcome="ok"}' in metrics
    assert "model_predict_seconds_bucket" in metrics


SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
HOSTILE = ['x"} 1\nmodel_evil 1', "{{7*7}}", "a" * 5000, "", "\u0000", "NaN"]


def scrape(server: str) -> list[tuple[str, dict[str, str], float]]:
    """The prediction metrics on /metrics as (name, labels, value) (not the request metrics)."""
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match["name"].startswith(
            ("model_feature", "model_predicted", "model_prediction_")
        ):
            samples.append(
                (match["name"], dict(LABEL.findall(match["labels"] or "")), float(match["value"]))
            )
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


def test_prediction_metrics_take_label_values_from_the_schema_only(
    server: str, reference: dict[str, Any], record: dict[str, Any]
) -> None:
    schema = reference["schema"]
    first = schema["features"][0]["name"]
    before = scrape(server)
    assert post_json(f"{server}/predict", record)[0] == 200
    assert post_json(f"{server}/predict_batch", {"records": [record] * 3})[0] == 200
    for value in HOSTILE:  # as a feature value, as a column name, and as a whole batch
        assert post_json(f"{server}/predict", {**record, first: value})[0] == 400
        assert post_json(f"{server}/predict", {**record, value: 1.0})[0] == 400
        assert post_json(f"{server}/predict_batch", {"records": [{first: value}]})[0] == 400
    after = scrape(server)

    names = {feature["name"] for feature in schema["features"]}
    levels = {str(level) for f in schema["features"] for level in f.get("categories", [])}
    allowed = {
        "feature": names,
        "bin": {str(k) for k in range(10)} | levels | {"__other__"},
        "class": set(map(str, schema.get("classes", []))),
    }
    for name, labels, _ in after:
        for key, value in labels.items():
            if key != "le":
                assert value in allowed[key], (name, key, value[:80])
    assert {n for n, _, _ in after} >= {
        "model_feature_bin_total",
        "model_feature_missing_total",
        "model_feature_training_fraction",
        "model_prediction_score_bucket",
        "model_prediction_training_fraction",
    }
    assert len(after) == len(before)  # the hostile requests added no series
    # Every served record counted once per feature and once in the outputs; refusals not at all.
    grown = {
        key: total(after, key, **labels) - total(before, key, **labels)
        for key, labels in (
            ("model_feature_bin_total", {"feature": first}),
            ("model_predicted_class_total", {}),
            ("model_prediction_score_count", {}),
        )
    }
    assert set(grown.values()) == {4}, grown
    fractions = [
        v
        for n, labels, v in after
        if n == "model_feature_training_fraction" and labels["feature"] == first
    ]
    assert len(fractions) == 10 and abs(sum(fractions) - 1.0) < 1e-3


def test_the_prediction_log_feeds_make_drift(
    server: str, bento_project: tuple[Path, dict[str, str]], record: dict[str, Any]
) -> None:
    project, env = bento_project
    assert post_json(f"{server}/predict_batch", {"records": [record] * 20})[0] == 200
    deadline, logged = time.monotonic() + 15, []
    # Other tests' requests are in the log too (two workers, one file each): count this one's.
    while time.monotonic() < deadline and sum(e["features"] == record for e in logged) < 20:
        time.sleep(0.2)
        logged = [
            json.loads(line)
            for path in (project / "build").glob("predictions.*.jsonl")
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
    assert sum(entry["features"] == record for entry in logged) >= 20
    (project / "build" / "log.jsonl").write_text(
        "".join(json.dumps(entry) + "\n" for entry in logged), encoding="utf-8"
    )
    result = subprocess.run(
        ["make", "drift", "INPUT=build/log.jsonl"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # 20 copies of one record drift, of course: the point is that the log is the report's input.
    assert "features drifted" in result.stdout, result.stderr[-2000:]
    summary = json.loads((project / "build" / "drift.json").read_text(encoding="utf-8"))
    assert summary["current"].endswith(f"({len(logged)} rows)")


def test_alert_rules_and_dashboard_read_only_metrics_the_served_bento_exposes(
    server: str, record: dict[str, Any]
) -> None:
    assert post_json(f"{server}/predict", record)[0] == 200  # request series exist once used
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        exposed = {
            SAMPLE.match(line)["name"]
            for line in response.read().decode().splitlines()
            if SAMPLE.match(line)
        }
    objects = render_bento(load_values(BENTO_CHART / "ci" / "prometheusrule-values.yaml"))
    queries = alert_selectors(one(objects, "PrometheusRule")).values()
    panels = dashboard_selectors(one(objects, "ConfigMap")).values()
    for selectors in (queries, panels):
        used = {name for found in selectors for name, _ in found}
        assert used and used <= exposed, used - exposed


def bad_inputs(reference: dict[str, Any]) -> list[tuple[str, str, bytes, str]]:
    """(case, endpoint, body, text the answer must contain) for every kind of bad input."""
    schema = reference["schema"]
    good = reference["records"][0]
    first = schema["features"][0]["name"]
    numeric = next(f["name"] for f in schema["features"] if f["kind"] == "numeric")

    def body(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    def columns(record: dict[str, Any], **changes: Any) -> bytes:
        """The record as a one-row columnar batch, some columns replaced."""
        values = {name: [value] for name, value in record.items()}
        return json.dumps({"columns": {**values, **changes}}).encode()

    missing = {key: value for key, value in good.items() if key != first}
    cases = [
        ("malformed JSON", "predict", b'{"' + first.encode() + b'": ', "json_invalid"),
        ("not an object", "predict", b"[1, 2]", "object"),
        ("missing field", "predict", json.dumps(missing).encode(), first),
        ("extra field", "predict", body(**{"no such column": 1}), "no such column"),
        ("wrong type", "predict", body(**{numeric: "12.5"}), numeric),
        ("boolean", "predict", body(**{numeric: True}), numeric),
        ("NaN", "predict", json.dumps({**good, numeric: math.nan}).encode(), numeric),
        ("Infinity", "predict", json.dumps({**good, numeric: math.inf}).encode(), numeric),
        ("overflow", "predict", body(**{numeric: 0}).replace(b": 0", b": 1e999", 1), numeric),
        ("empty batch", "predict_batch", b'{"records": []}', "records"),
        ("batch not a list", "predict_batch", b'{"records": 5}', "records"),
        (
            "bad record in batch",
            "predict_batch",
            json.dumps({"records": [good, missing]}).encode(),
            first,
        ),
        (
            "batch over the maximum",
            "predict_batch",
            json.dumps({"records": [good] * (MAX_BATCH + 1)}).encode(),
            "records",
        ),
        ("oversized body", "predict", b" " * (MAX_BODY_BYTES + 1), "limit"),
        (
            "columns of unequal length",
            "predict_columns",
            columns(good, **{first: [None] * 2}),
            first,
        ),
        ("column missing", "predict_columns", columns(missing), first),
        ("column not a list", "predict_columns", columns(good, **{first: 5}), first),
        (
            "extreme value in a column",
            "predict_columns",
            columns(good, **{numeric: [1e308]}),
            f"columns.{numeric}[0]",
        ),
    ]
    categorical = [f for f in schema["features"] if f["kind"] == "categorical"]
    if categorical:
        name = categorical[0]["name"]
        cases.append(("unknown category", "predict", body(**{name: "no such level"}), name))
    return cases


def test_bad_inputs_get_4xx_naming_the_field(server: str, reference: dict[str, Any]) -> None:
    failures = []
    for case, endpoint, body, expected in bad_inputs(reference):
        status, answer = post(f"{server}/{endpoint}", body)
        text = json.dumps(answer)
        if not 400 <= status < 500 or expected not in text:
            failures.append(f"{case}: {status} {text[:300]}")
    assert not failures, "\n".join(failures)
    assert get(f"{server}/livez") == 200
    assert post_json(f"{server}/predict", reference["records"][0])[0] == 200


# Any JSON value, nested a little: what a confused client might send for a field.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def mangled_bodies(draw: st.DrawFn, reference: dict[str, Any]) -> tuple[str, bytes]:
    """A valid record with fields changed, dropped or added, as a single or a batch request."""
    record = dict(reference["records"][0])
    names = [feature["name"] for feature in reference["schema"]["features"]]
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):
        record.pop(name, None)
    keys = st.sampled_from(names) | st.text(max_size=8)
    record.update(draw(st.dictionaries(keys, JSON_VALUES, max_size=3)))
    if draw(st.booleans()):
        return "predict", json.dumps(record).encode()
    return "predict_batch", json.dumps(
        {"records": draw(st.lists(st.just(record), max_size=3))}
    ).encode()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_never_5xx(server: str, reference: dict[str, Any], data: st.DataObject) -> None:
    endpoint, body = data.draw(
        mangled_bodies(reference)
        | st.tuples(
            st.sampled_from(["predict", "predict_batch", "metadata"]), st.binary(max_size=64)
        )
    )
    content_type = data.draw(
        st.sampled_from(["application/json", "text/plain", "multipart/form-data; boundary=x"])
    )
    status, answer = post(f"{server}/{endpoint}", body, content_type)
    assert status < 500, f"{endpoint} {body[:200]!r} ({content_type}) -> {status} {answer}"
