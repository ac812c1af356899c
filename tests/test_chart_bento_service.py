"""The bento-service chart: rendered by the real Helm 4 engine, validated against the Kubernetes
schemas, its values schema (the deploy tool's contract), Pod Security "restricted", probes,
optional objects, checkov and its README's parameters table. No cluster, no network."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml
from helpers.charts import (
    BENTO_CHART,
    DNS1035,
    NASTY_BRANCH,
    docs_module,
    key_mismatches,
    load_values,
    one,
    open_objects,
    render_bento,
    scenario_id,
    validate_strictly,
)
from helpers.project import require_tool

BENTO_SCENARIOS = sorted(BENTO_CHART.glob("ci/*-values.yaml"))
MINIMAL = BENTO_CHART / "ci" / "minimal-values.yaml"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def minimal(**overrides: Any) -> dict[str, Any]:
    """The deploy tool's minimal values file, with top-level keys replaced."""
    return {**load_values(MINIMAL), **overrides}


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


# --- bento-service: lint, render, schemas --------------------------------------------------


@pytest.mark.parametrize("scenario", BENTO_SCENARIOS, ids=scenario_id)
def test_bento_lint_strict(scenario: Path) -> None:
    values = load_values(scenario)
    report = helm.lint(
        BENTO_CHART, values, strict=True, namespace=f"{values['project']}-{values['environment']}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


@pytest.mark.parametrize("scenario", BENTO_SCENARIOS, ids=scenario_id)
def test_bento_scenario_validates_against_kubernetes(scenario: Path) -> None:
    objects = render_bento(load_values(scenario))
    assert {"Deployment", "Service"} <= {o["kind"] for o in objects}
    for obj in objects:
        validate_strictly(obj)


@pytest.mark.parametrize("scenario", BENTO_SCENARIOS, ids=scenario_id)
def test_names_labels_and_namespaces(scenario: Path) -> None:
    values = load_values(scenario)
    release = f"{values['project']}-{values['environment']}"
    for obj in render_bento(values):
        meta = obj["metadata"]
        assert meta["name"] == release, "fullname is the release name, with no suffix"
        if obj["kind"] != "Namespace":
            assert meta["namespace"] == release
        for key, value in meta.get("labels", {}).items():
            assert LABEL_KEY.match(key) and LABEL_VALUE.match(value) and len(value) <= 63, (
                f"{obj['kind']} label {key}={value!r}"
            )


def test_longest_names_stay_valid() -> None:
    values = minimal(project="p" * 24, environment="e" * 28)
    objects = render_bento(values)
    name = one(objects, "Service")["metadata"]["name"]
    assert len(name) == 53 and DNS1035.match(name)
    helm.validate_release_name(name)


# --- the values schema is the deploy tool's contract ----------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"replicas": 2}, "replicas"),
        ({"image": {"repository": "127.0.0.1:5000/iris", "tags": "x"}}, "tags"),
        ({"resources": {"limits": {"cpu": "1", "memory": "1Gi", "cpus": 2}}}, "cpus"),
        ({"lineage": {"brnch": "main"}}, "brnch"),
        ({"replicaCount": "2"}, "/replicaCount"),
        ({"ingress": {"enabled": "yes"}}, "/ingress/enabled"),
        ({"podLabels": {"team": "a b"}}, "/podLabels/team"),
        ({"project": "Iris_1"}, "/project"),
        ({"environment": "e" * 29}, "/environment"),
        ({"image": {"repository": "127.0.0.1:5000/iris:3f2a1b4"}}, "/image/repository"),
        ({"image": {"repository": "r/iris", "digest": "sha256:abc"}}, "/image/digest"),
        ({"lineage": {"deployedAt": "yesterday"}}, "/lineage/deployedAt"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_fail_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(key)):
        render_bento(minimal(**change))


def test_python_jsonschema_agrees_with_helm() -> None:
    """The deploy tool validates with Python's jsonschema: same verdicts as Helm's validator."""
    schema = json.loads((BENTO_CHART / "values.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.check_schema(schema)
    for scenario in BENTO_SCENARIOS:
        validator.validate(load_values(scenario))
    for bad in ({"replicas": 2}, {"replicaCount": "2"}, {"project": "Iris_1"}):
        assert not validator.is_valid(minimal(**bad))


def test_missing_image_fails_naming_the_key() -> None:
    values = minimal()
    del values["image"]
    with pytest.raises(helm.HelmValuesError, match="/image/repository"):
        render_bento(values)


def test_image_needs_tag_or_digest() -> None:
    with pytest.raises(helm.HelmError, match=r"image\.tag or image\.digest"):
        render_bento(minimal(image={"repository": "127.0.0.1:5000/iris"}))


def test_ingress_needs_host() -> None:
    with pytest.raises(helm.HelmError, match=r"ingress\.host"):
        render_bento(minimal(ingress={"enabled": True}))


def test_deploy_tool_keys_render() -> None:
    """Every top-level key the deploy tool writes, and nothing else, renders."""
    values = load_values(BENTO_CHART / "ci" / "ingress-values.yaml")
    assert set(values) == {"project", "environment", "image", "lineage", "ingress"}
    assert set(values["lineage"]) == {
        "branch",
        "gitCommit",
        "mlflowRunId",
        "modelName",
        "modelVersion",
        "deployedAt",
    }
    assert (
        one(render_bento(values), "Ingress")["spec"]["rules"][0]["host"]
        == values["ingress"]["host"]
    )


def test_schema_matches_values_and_refuses_unknown_keys() -> None:
    schema = json.loads((BENTO_CHART / "values.schema.json").read_text())
    assert key_mismatches(load_values(BENTO_CHART / "values.yaml"), schema) == []
    # Affinity terms are Kubernetes' own structure, validated by the API server.
    assert open_objects(schema) == [
        "/affinity/nodeAffinity",
        "/affinity/podAffinity",
        "/affinity/podAntiAffinity",
    ]


# --- documentation -------------------------------------------------------------------------


def test_readme_parameters_table_is_current() -> None:
    docs = docs_module()
    readme = (BENTO_CHART / "README.md").read_text()
    assert docs.render_readme(readme, (BENTO_CHART / "values.yaml").read_text()) == readme, (
        f"run: python charts/bento-service/docs.py charts/{BENTO_CHART.name}"
    )


def test_docs_refuses_undocumented_values() -> None:
    docs = docs_module()
    assert docs.parameters("# -- documented\na: 1\nb:\n  # -- nested\n  c: x\n") == [
        ("a", "1", "documented"),
        ("b.c", '"x"', "nested"),
    ]
    with pytest.raises(ValueError, match="`b.d`"):
        docs.parameters("# -- documented\na: 1\nb:\n  # plain comment\n  d: 2\n")


# --- pod security and runtime settings -----------------------------------------------------


@pytest.mark.parametrize("scenario", BENTO_SCENARIOS, ids=scenario_id)
def test_pod_meets_restricted_pod_security(scenario: Path) -> None:
    values = load_values(scenario)
    objects = render_bento(values)
    pod = pod_spec(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1034
    assert pod["securityContext"]["runAsGroup"] == 1034
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field)
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"])
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True
    assert "hostPort" not in container["ports"][0]
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    # BentoML writes under BENTOML_HOME (tmp, Prometheus multiprocess dir) and /tmp.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {env_of(container)["BENTOML_HOME"], "/tmp"}
    if values.get("namespace", {}).get("create", True):
        labels = one(objects, "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_bentoml_probes_port_and_metrics() -> None:
    objects = render_bento(minimal())
    pod = pod_spec(objects)
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "3000"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert one(objects, "Service")["spec"]["ports"][0]["targetPort"] == "http"
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("cpu", "threads"), [("500m", 1), ("1", 1), (2, 2), ("2.5", 3), ("2500m", 3)]
)
def test_thread_variables_follow_the_cpu_limit(cpu: str | int, threads: int) -> None:
    resources = {
        "requests": {"cpu": "100m", "memory": "1Gi"},
        "limits": {"cpu": cpu, "memory": "1Gi"},
    }
    env = env_of(pod_spec(render_bento(minimal(resources=resources)))["containers"][0])
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name] == str(threads)


def test_workers_are_set_for_the_named_bento_service() -> None:
    env = env_of(
        pod_spec(render_bento(minimal(bento={"service": "Iris", "workers": 2})))["containers"][0]
    )
    assert json.loads(env["BENTOML_CONFIG_OVERRIDES"]) == {"services": {"Iris": {"workers": 2}}}
    assert "BENTOML_CONFIG_OVERRIDES" not in env_of(
        pod_spec(render_bento(minimal()))["containers"][0]
    )


# --- image and lineage -----------------------------------------------------------------------


def test_digest_wins_over_tag() -> None:
    digest = "sha256:" + "ab" * 32
    tagged = pod_spec(render_bento(minimal()))["containers"][0]["image"]
    assert tagged == "127.0.0.1:5000/iris:3f2a1b4"
    image = {"repository": "127.0.0.1:5000/iris", "tag": "3f2a1b4", "digest": digest}
    assert pod_spec(render_bento(minimal(image=image)))["containers"][0]["image"] == (
        f"127.0.0.1:5000/iris@{digest}"
    )


def test_lineage_is_annotated_and_branch_is_never_a_label_or_name() -> None:
    lineage = {
        "branch": NASTY_BRANCH,
        "gitCommit": "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c",
        "mlflowRunId": "0123456789abcdef0123456789abcdef",
        "modelName": "iris model",  # not a valid label value: annotation only
        "modelVersion": "3",
        "deployedAt": "2026-11-22T05:00:00Z",
    }
    objects = render_bento(minimal(lineage=lineage))
    deployment = one(objects, "Deployment")
    for meta in (deployment["metadata"], deployment["spec"]["template"]["metadata"]):
        annotations = meta["annotations"]
        assert annotations["gitops-ml.io/branch"] == NASTY_BRANCH
        assert annotations["gitops-ml.io/model-name"] == "iris model"
        assert annotations["gitops-ml.io/deployed-at"] == "2026-11-22T05:00:00Z"
        assert annotations["gitops-ml.io/image"] == "127.0.0.1:5000/iris:3f2a1b4"
        assert meta["labels"]["gitops-ml.io/git-commit"] == lineage["gitCommit"]
        assert meta["labels"]["gitops-ml.io/mlflow-run-id"] == lineage["mlflowRunId"]
        assert meta["labels"]["gitops-ml.io/model-version"] == "3"
        assert "gitops-ml.io/model-name" not in meta["labels"]
    for obj in objects:
        text = json.dumps(
            [obj["metadata"]["name"], obj["metadata"].get("labels")], ensure_ascii=False
        )
        assert not any(word in text for word in ("feat/", "quoted", "HOME", "secrets", "ünï"))


# --- optional objects ------------------------------------------------------------------------


def _kinds(values: dict[str, Any]) -> set[str]:
    return {o["kind"] for o in render_bento(values)}


def test_default_objects() -> None:
    assert _kinds(minimal()) == {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


def test_features_off_render_only_the_workload() -> None:
    values = load_values(BENTO_CHART / "ci" / "features-off-values.yaml")
    objects = render_bento(values)
    assert {o["kind"] for o in objects} == {"Deployment", "Service"}
    assert pod_spec(objects)["serviceAccountName"] == "default"


def test_autoscaling_owns_replicas() -> None:
    objects = render_bento(load_values(BENTO_CHART / "ci" / "hpa-values.yaml"))
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    assert "replicas" not in one(objects, "Deployment")["spec"]
    with pytest.raises(helm.HelmError, match="minReplicas"):
        render_bento(minimal(autoscaling={"enabled": True, "minReplicas": 4, "maxReplicas": 2}))


def test_service_monitor_replaces_scrape_annotations() -> None:
    objects = render_bento(load_values(BENTO_CHART / "ci" / "servicemonitor-values.yaml"))
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        one(objects, "Service")["metadata"]["labels"].items()
    )
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "prometheus.io/scrape" not in annotations


def test_network_policy_admits_listed_namespaces_on_the_http_port_only() -> None:
    policy = one(render_bento(minimal()), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = [
        p["namespaceSelector"]["matchLabels"] for p in rule["from"] if "namespaceSelector" in p
    ]
    assert namespaces == [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ]
    assert {p["port"] for p in policy["egress"][0]["ports"]} == {53}


# --- checkov ---------------------------------------------------------------------------------

# checkov pins `packaging` against the dev venv, so it runs in its own environment through
# `uv tool run` (cached by uv; the first run downloads it from PyPI).
CHECKOV = ["uv", "tool", "run", "--from", "checkov==3.3.30", "checkov"]
CHECKOV_SKIPS = {
    # 1034 is the UID BentoML images create their `bentoml` user with and own the Bento as;
    # Pod Security "restricted" only requires non-root. The UID is a chart value.
    "CKV_K8S_40": "Containers should run as a high UID",
}
# Allowed only for scenarios deployed by tag: previews deploy the pipeline's commit tag, and a
# digest (which the chart prefers when set) satisfies both; the digest scenarios must pass them.
TAG_ONLY_FAILURES = {"CKV_K8S_43", "CKV_K8S_15"}


@pytest.mark.slow
def test_checkov_passes_every_scenario(tmp_path: Path) -> None:
    require_tool("uv")
    scenarios = {}
    for scenario in BENTO_SCENARIOS:
        values = load_values(scenario)
        scenarios[scenario.name] = values
        objects = render_bento(values)
        (tmp_path / scenario.name).write_text(yaml.safe_dump_all(objects))
    result = subprocess.run(
        [
            *CHECKOV,
            "--skip-download",
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
            "--directory",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    scanned = {
        Path(c["file_path"]).name
        for c in report["results"]["passed_checks"]
        if c["resource"].startswith("Deployment.")
    }
    assert scanned == set(scenarios), "checkov skipped a rendered file"
    failures = [
        (c["check_id"], Path(c["file_path"]).name) for c in report["results"]["failed_checks"]
    ]
    unexpected = [
        (check, file)
        for check, file in failures
        if not (check in TAG_ONLY_FAILURES and not scenarios[file]["image"].get("digest"))
    ]
    assert unexpected == []
