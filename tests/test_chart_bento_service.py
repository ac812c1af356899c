"""The bento-service chart: rendered by the real Helm 4 engine in both serving modes (a Deployment
and its Service, or a KServe InferenceService), validated against the Kubernetes and the vendored
CRD schemas, its values schema (the deploy tool's contract), Pod Security "restricted", probes,
runtime configuration, optional objects, checkov and its README's parameters table. No cluster,
no network."""

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
    SERVING_MODES,
    alert_selectors,
    crd_validator,
    dashboard_selectors,
    docs_module,
    in_mode,
    key_mismatches,
    load_values,
    merge_values,
    one,
    open_objects,
    render_bento,
    scenario_id,
    validate_strictly,
)
from helpers.project import require_tool

BENTO_SCENARIOS = sorted(BENTO_CHART.glob("ci/*-values.yaml"))
MINIMAL = BENTO_CHART / "ci" / "minimal-values.yaml"


def _pinned_mode(scenario: Path) -> str | None:
    """The serving mode a scenario pins (`serving.mode`), or None for a mode-neutral one."""
    return load_values(scenario).get("serving", {}).get("mode")


# Every mode-neutral scenario in every serving mode; a pinned one (kserve-only knobs, or
# deployment-only ingress settings) in its own mode only.
RENDERINGS = [
    (scenario, mode)
    for scenario in BENTO_SCENARIOS
    for mode in ([None] if _pinned_mode(scenario) else SERVING_MODES)
]


def rendering_id(value: Any) -> str:
    return scenario_id(value) if isinstance(value, Path) else (value or "pinned")


def values_of(scenario: Path, mode: str | None) -> dict[str, Any]:
    values = load_values(scenario)
    return in_mode(values, mode) if mode else values


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


# The InferenceService predictor's own fields (ComponentExtensionSpec); the rest is a PodSpec.
PREDICTOR_EXTENSIONS = {
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleMetricType",
    "scaleTarget",
    "canaryTrafficPercent",
    "containerConcurrency",
    "timeout",
    "labels",
    "annotations",
    "autoScaling",
    "deploymentStrategy",
}


def workload(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod metadata, pod spec) of the Deployment (or canary Rollout), or of the
    InferenceService's predictor."""
    kinds = {o["kind"] for o in objects}
    if "InferenceService" in kinds:
        predictor = one(objects, "InferenceService")["spec"]["predictor"]
        meta = {"labels": predictor["labels"], "annotations": predictor["annotations"]}
        return meta, {k: v for k, v in predictor.items() if k not in PREDICTOR_EXTENSIONS}
    template = one(objects, "Rollout" if "Rollout" in kinds else "Deployment")["spec"]["template"]
    return template["metadata"], template["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --- bento-service: lint, render, schemas --------------------------------------------------


@pytest.mark.parametrize(("scenario", "mode"), RENDERINGS, ids=rendering_id)
def test_bento_lint_strict(scenario: Path, mode: str | None) -> None:
    values = values_of(scenario, mode)
    report = helm.lint(
        BENTO_CHART, values, strict=True, namespace=f"{values['project']}-{values['environment']}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


@pytest.mark.parametrize(("scenario", "mode"), RENDERINGS, ids=rendering_id)
def test_bento_scenario_validates_against_kubernetes(scenario: Path, mode: str | None) -> None:
    values = values_of(scenario, mode)
    objects = render_bento(values)
    kinds = {o["kind"] for o in objects}
    if values["serving"]["mode"] == "kserve":
        assert "InferenceService" in kinds
        assert not kinds & {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"}
    else:
        # A canary rolls the same pods out through an Argo Rollouts Rollout instead.
        canary = values.get("rollout", {}).get("canary", {}).get("enabled")
        workload = {"Rollout", "AnalysisTemplate"} if canary else {"Deployment"}
        assert workload | {"Service"} <= kinds and "InferenceService" not in kinds
        assert not kinds & ({"Rollout", "Deployment"} - workload)
    for obj in objects:
        validate_strictly(obj)


@pytest.mark.parametrize(
    "scenario", [s for s in BENTO_SCENARIOS if _pinned_mode(s)], ids=scenario_id
)
def test_pinned_scenarios_fail_in_the_other_mode_naming_the_value(scenario: Path) -> None:
    values = load_values(scenario)
    other = "kserve" if values["serving"]["mode"] == "deployment" else "deployment"
    with pytest.raises(helm.HelmValuesError, match=r"at '/(kserve|ingress|serving)/\w+'"):
        render_bento({**values, "serving": {"mode": other}})


@pytest.mark.parametrize(("scenario", "mode"), RENDERINGS, ids=rendering_id)
def test_names_labels_and_namespaces(scenario: Path, mode: str | None) -> None:
    values = values_of(scenario, mode)
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
    batch = {"enabled": True, "input": "s3://data/in.csv", "output": "s3://data/out.csv"}
    values = minimal(project="p" * 24, environment="e" * 28, batch=batch)
    objects = render_bento(values)
    name = one(objects, "Service")["metadata"]["name"]
    assert len(name) == 53 and DNS1035.match(name)
    helm.validate_release_name(name)
    # The API server refuses a CronJob name over 52 characters (its Jobs' names add 11).
    cronjob = one(objects, "CronJob")["metadata"]["name"]
    assert len(cronjob) == 52 and DNS1035.match(cronjob) and name.startswith(cronjob)


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


def assert_restricted(container: dict[str, Any]) -> None:
    """Pod Security "restricted" on the container itself: non-root, read-only, no privileges."""
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (1034, 1034)


@pytest.mark.parametrize(("scenario", "mode"), RENDERINGS, ids=rendering_id)
def test_pod_meets_restricted_pod_security(scenario: Path, mode: str | None) -> None:
    values = values_of(scenario, mode)
    objects = render_bento(values)
    _, pod = workload(objects)
    knative = values["serving"]["mode"] == "kserve" and (
        values.get("kserve", {}).get("deploymentMode") != "Standard"
    )
    if knative:
        # Knative refuses a pod securityContext (unless its podspec-securitycontext feature is
        # on) and sets terminationGracePeriodSeconds itself: the container carries everything.
        assert "securityContext" not in pod and "terminationGracePeriodSeconds" not in pod
    else:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1034
        assert pod["securityContext"]["runAsGroup"] == 1034
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field)
    # Pod Security "restricted" allows these volume types (and a few others the chart never uses).
    for volume in pod["volumes"]:
        (kind,) = set(volume) - {"name"}
        assert kind in {"emptyDir", "secret", "configMap"}
    (container,) = pod["containers"]
    assert_restricted(container)
    assert "hostPort" not in container["ports"][0]
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    # BentoML writes under BENTOML_HOME (tmp, Prometheus multiprocess dir) and /tmp; any other
    # writable mount is an emptyDir of bento.volumes, Secrets and ConfigMaps are read-only.
    emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert {env_of(container)["BENTOML_HOME"], "/tmp"} <= writable
    assert all(m["name"] in emptydirs for m in container["volumeMounts"] if not m.get("readOnly"))
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


def test_alert_rules_parse_and_read_only_their_own_namespace() -> None:
    objects = render_bento(load_values(BENTO_CHART / "ci" / "prometheusrule-values.yaml"))
    rule = one(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selectors = alert_selectors(rule)  # parses every expression
    assert set(selectors) == {
        "ModelHighErrorRate",
        "ModelHighLatency",
        "ModelNoTraffic",
        "ModelPredictionShift",
    }
    namespace = rule["metadata"]["namespace"]
    for alert, found in selectors.items():
        assert found and all(matchers.get("namespace") == namespace for _, matchers in found), alert
    assert "> 0.25" in str(rule["spec"])  # p99Seconds from the values
    assert "PrometheusRule" not in {o["kind"] for o in render_bento(minimal())}


def test_dashboard_is_a_sidecar_config_map_whose_queries_parse_and_read_their_namespace() -> None:
    objects = render_bento(load_values(BENTO_CHART / "ci" / "prometheusrule-values.yaml"))
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    validate_strictly(config_map)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Models"}
    namespace = config_map["metadata"]["namespace"]
    dashboard = json.loads(config_map["data"][f"{namespace}.json"])
    assert dashboard["title"] == namespace and len(dashboard["uid"]) <= 40  # Grafana's uid limit
    # Panels do not overlap, and every query names this environment's series only.
    places = [tuple(p["gridPos"][k] for k in ("x", "y")) for p in dashboard["panels"]]
    assert len(set(places)) == len(places)
    selectors = dashboard_selectors(config_map)  # parses every query
    assert len(selectors) == 7
    for title, found in selectors.items():
        assert found and all(m.get("namespace") == namespace for _, m in found), title
    # The distributions are drawn against their training shares, from the gauges set at load.
    names = {name for found in selectors.values() for name, _ in found}
    assert {"model_prediction_training_fraction", "model_feature_training_fraction"} <= names
    assert "ConfigMap" not in {o["kind"] for o in render_bento(minimal())}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"labels": {"team name": "ml"}}, "invalid propertyName 'team name'"),
        ({"sidecarLabel": "grafana dashboard"}, "/metrics/dashboard/sidecarLabel"),
        ({"sidecarLabelValue": 1}, "/metrics/dashboard/sidecarLabelValue"),
        ({"folder": "Models"}, "folder"),
    ],
)
def test_bad_dashboard_values_fail_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(key)):
        render_bento(merge_values(minimal(), {"metrics": {"dashboard": change}}))


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
# "Prefer secrets as files over environment variables": bento.envValueFrom/envFrom take Secrets
# as variables because a model repo may ask for that (bento.volumes offers files), and the batch
# copier's rclone reads its credentials from variables; only the scenarios that do so may fail it.
SCENARIO_FAILURES = {
    "runtime-config-values.yaml": {"CKV_K8S_35"},
    "batch-values.yaml": {"CKV_K8S_35"},
}


@pytest.mark.slow
def test_checkov_passes_every_scenario(tmp_path: Path) -> None:
    require_tool("uv")
    scenarios = {}
    # checkov knows the built-in kinds only: every scenario that deployment mode renders.
    for scenario in BENTO_SCENARIOS:
        if _pinned_mode(scenario) == "kserve":
            continue
        values = values_of(scenario, None if _pinned_mode(scenario) else "deployment")
        # Nor a Rollout: a canary's pods are the Deployment's (test_canary_rolls_the_...).
        values = merge_values(values, {"rollout": {"canary": {"enabled": False}}})
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
        and check not in SCENARIO_FAILURES.get(file, set())
    ]
    assert unexpected == []


# --- kserve mode: one InferenceService from the same values ----------------------------------

NEUTRAL_SCENARIOS = [s for s in BENTO_SCENARIOS if not _pinned_mode(s)]
KSERVE_MODES = ["kserve-knative", "kserve-standard"]


def kserve(
    values: dict[str, Any], deployment_mode: str = "Knative", **knobs: Any
) -> dict[str, Any]:
    """`values` as a platform running KServe renders them, with extra `kserve.*` knobs."""
    mode = {"Knative": "kserve-knative", "Standard": "kserve-standard"}[deployment_mode]
    rendered = in_mode(values, mode)
    rendered["kserve"].update(knobs)
    return rendered


def predictor(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "InferenceService")["spec"]["predictor"]


def _portable(container: dict[str, Any]) -> dict[str, Any]:
    """A container without what differs between the modes: its name and its port's name."""
    container = json.loads(json.dumps(container))
    del container["name"]
    for port in container["ports"]:
        del port["name"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        del container[probe]["httpGet"]["port"]
    return container


@pytest.mark.parametrize("mode", KSERVE_MODES)
@pytest.mark.parametrize("scenario", NEUTRAL_SCENARIOS, ids=scenario_id)
def test_predictor_is_the_deployments_pod(scenario: Path, mode: str) -> None:
    """Same image, probes, resources, security context, env, mounts, service account, pod
    labels and annotations, lineage; only names KServe and Knative impose differ."""
    values = load_values(scenario)
    deployment_objects = render_bento(in_mode(values, "deployment"))
    kserve_objects = render_bento(in_mode(values, mode))
    deployment_meta, deployment_pod = workload(deployment_objects)
    kserve_meta, kserve_pod = workload(kserve_objects)
    assert kserve_meta == deployment_meta
    (bento,) = deployment_pod.pop("containers")
    (served,) = kserve_pod.pop("containers")
    assert served["name"] == "kserve-container"  # what KServe's custom predictor looks for
    assert _portable(served) == _portable(bento)
    if mode == "kserve-knative":
        for field in ("securityContext", "terminationGracePeriodSeconds"):
            deployment_pod.pop(field)
    assert kserve_pod == deployment_pod
    isvc = one(kserve_objects, "InferenceService")
    assert isvc["metadata"]["annotations"] == {
        **one(deployment_objects, "Deployment")["metadata"]["annotations"],
        "serving.kserve.io/deploymentMode": mode.removeprefix("kserve-").capitalize(),
    }


@pytest.mark.parametrize("mode", KSERVE_MODES)
def test_kserve_probes_port_and_objects(mode: str) -> None:
    objects = render_bento(in_mode(minimal(), mode))
    assert {o["kind"] for o in objects} == {
        "Namespace",
        "ServiceAccount",
        "InferenceService",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    isvc = one(objects, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    pred = predictor(objects)
    (container,) = pred["containers"]
    # Knative takes only "", "http1" or "h2c" as the port's name, and probes must name it.
    assert container["ports"] == [{"name": "http1", "containerPort": 3000, "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http1"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http1"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http1"}
    assert pred["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    # The PDB and the NetworkPolicy select KServe's pods by the labels the predictor gives them.
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        spec = one(objects, kind)["spec"]
        selector = spec.get("selector", spec.get("podSelector"))["matchLabels"]
        assert selector.items() <= pred["labels"].items()


@pytest.mark.parametrize(
    ("scenario", "mode", "expected"),
    [
        ("minimal", "kserve-knative", {"minReplicas": 1, "maxReplicas": 1}),
        ("production", "kserve-knative", {"minReplicas": 3, "maxReplicas": 3}),
        ("hpa", "kserve-knative", {"minReplicas": 2, "maxReplicas": 5}),
        # Standard: KServe's HPA, at the chart's CPU target.
        (
            "hpa",
            "kserve-standard",
            {"minReplicas": 2, "maxReplicas": 5, "scaleMetric": "cpu", "scaleTarget": 70},
        ),
        ("kserve-preview", None, {"minReplicas": 0, "maxReplicas": 1}),
        (
            "kserve-canary",
            None,
            {
                "minReplicas": 3,
                "maxReplicas": 6,
                "scaleMetric": "concurrency",
                "scaleTarget": 8,
                "canaryTrafficPercent": 10,
            },
        ),
        ("kserve-standard", None, {"minReplicas": 2, "maxReplicas": 5, "scaleMetric": "cpu"}),
    ],
)
def test_kserve_scaling_follows_the_same_values(
    scenario: str, mode: str | None, expected: dict[str, Any]
) -> None:
    values = values_of(BENTO_CHART / "ci" / f"{scenario}-values.yaml", mode)
    pred = predictor(render_bento(values))
    scaling = {
        k: v for k, v in pred.items() if k in PREDICTOR_EXTENSIONS - {"labels", "annotations"}
    }
    assert scaling == {**expected, **({"scaleTarget": 70} if scenario == "kserve-standard" else {})}


def test_previews_may_scale_to_zero_production_keeps_a_floor() -> None:
    assert predictor(render_bento(kserve(minimal(), minReplicas=0)))["minReplicas"] == 0
    production = minimal(environment="production")
    with pytest.raises(helm.HelmValuesError, match="/kserve/minReplicas"):
        render_bento(kserve(production, minReplicas=0))
    with pytest.raises(helm.HelmError, match="production needs at least one replica"):
        render_bento(kserve({**production, "replicaCount": 0}))
    with pytest.raises(helm.HelmValuesError, match="/kserve/minReplicas"):
        render_bento(kserve(minimal(), "Standard", minReplicas=0))
    with pytest.raises(helm.HelmError, match="Standard mode needs at least one replica"):
        render_bento(kserve(minimal(replicaCount=0), "Standard"))
    with pytest.raises(helm.HelmError, match=r"kserve\.maxReplicas \(2\) is below"):
        render_bento(kserve(minimal(replicaCount=3), minReplicas=3, maxReplicas=2))


def test_canary_needs_knative() -> None:
    assert (
        predictor(render_bento(kserve(minimal(), canaryTrafficPercent=25)))["canaryTrafficPercent"]
        == 25
    )
    with pytest.raises(helm.HelmValuesError, match="/kserve/canaryTrafficPercent"):
        render_bento(kserve(minimal(), "Standard", canaryTrafficPercent=25))
    with pytest.raises(helm.HelmValuesError, match="/kserve/canaryTrafficPercent"):
        render_bento(minimal(kserve={"canaryTrafficPercent": 25}))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        # An unknown mode.
        ({"serving": {"mode": "knative"}}, "/serving/mode"),
        (
            {"kserve": {"deploymentMode": "Serverless"}, "serving": {"mode": "kserve"}},
            "/kserve/deploymentMode",
        ),
        # KServe-only knobs in deployment mode.
        ({"kserve": {"deploymentMode": "Knative"}}, "/kserve/deploymentMode"),
        ({"kserve": {"minReplicas": 0}}, "/kserve/minReplicas"),
        ({"kserve": {"maxReplicas": 4}}, "/kserve/maxReplicas"),
        ({"kserve": {"scaleMetric": "concurrency"}}, "/kserve/scaleMetric"),
        ({"kserve": {"scaleTarget": 10}}, "/kserve/scaleTarget"),
        ({"kserve": {"canaryTrafficPercent": 10}}, "/kserve/canaryTrafficPercent"),
        # Deployment-only knobs in kserve mode: KServe makes the Service and the ingress.
        ({"serving": {"mode": "kserve"}, "service": {"type": "NodePort"}}, "/service/type"),
        ({"serving": {"mode": "kserve"}, "service": {"port": 8080}}, "/service/port"),
        ({"serving": {"mode": "kserve"}, "ingress": {"className": "nginx"}}, "/ingress/className"),
        (
            {"serving": {"mode": "kserve"}, "ingress": {"tlsSecretName": "t"}},
            "/ingress/tlsSecretName",
        ),
        (
            {"serving": {"mode": "kserve"}, "ingress": {"annotations": {"a": "b"}}},
            "/ingress/annotations",
        ),
        # Knobs of the other KServe deployment mode.
        ({"serving": {"mode": "kserve"}, "kserve": {"scaleMetric": "cpu"}}, "/kserve/scaleMetric"),
        (
            {
                "serving": {"mode": "kserve"},
                "kserve": {"deploymentMode": "Standard", "scaleMetric": "rps"},
            },
            "/kserve/scaleMetric",
        ),
        # Knative reserves its queue-proxy's ports.
        ({"serving": {"mode": "kserve"}, "bento": {"port": 8012}}, "/bento/port"),
        (
            {"serving": {"mode": "kserve"}, "kserve": {"canaryTrafficPercent": 101}},
            "/kserve/canaryTrafficPercent",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_mode_values_fail_naming_the_value(change: dict[str, Any], key: str) -> None:
    values = minimal(**change)
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"at '{key}'")):
        render_bento(values)
    schema = json.loads((BENTO_CHART / "values.schema.json").read_text())
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(values)


def test_deployment_ingress_with_class_tls_and_annotations() -> None:
    values = load_values(BENTO_CHART / "ci" / "deployment-ingress-tls-values.yaml")
    ingress = one(render_bento(values), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["iris.models.example.com"], "secretName": "iris-tls"}
    ]
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "8m"
    }


@pytest.mark.parametrize(
    ("deployment_mode", "label"),
    [
        ("Knative", "networking.knative.dev/visibility"),
        ("Standard", "networking.kserve.io/visibility"),
    ],
)
def test_no_ingress_keeps_the_inference_service_cluster_local(
    deployment_mode: str, label: str
) -> None:
    """KServe's own ingress is the preview URL; without ingress.enabled it makes none."""
    local = one(render_bento(kserve(minimal(), deployment_mode)), "InferenceService")
    assert local["metadata"]["labels"][label] == "cluster-local"
    ingress = {"enabled": True, "host": "iris-feat-x-1a2b3c4d.preview.localhost"}
    public = one(
        render_bento(kserve(minimal(ingress=ingress), deployment_mode)), "InferenceService"
    )
    assert not {k for k in public["metadata"]["labels"] if k.endswith("/visibility")}
    with pytest.raises(helm.HelmError, match=r"ingress\.host"):
        render_bento(kserve(minimal(ingress={"enabled": True}), deployment_mode))


def test_network_policy_lets_knative_reach_the_queue_proxy() -> None:
    knative = one(render_bento(kserve(minimal())), "NetworkPolicy")["spec"]
    (rule,) = knative["ingress"]
    assert [p["port"] for p in rule["ports"]] == [8012, 9090, 9091, 3000]
    namespaces = [p["namespaceSelector"]["matchLabels"] for p in rule["from"][1:]]
    assert {"kubernetes.io/metadata.name": "knative-serving"} in namespaces
    standard = one(render_bento(kserve(minimal(), "Standard")), "NetworkPolicy")["spec"]
    (rule,) = standard["ingress"]
    assert rule["ports"] == [{"port": 3000, "protocol": "TCP"}]
    assert len(rule["from"]) == 3  # the namespace itself, ingress-nginx, monitoring


@pytest.mark.parametrize(
    ("mode", "port"), [("kserve-knative", "user-port"), ("kserve-standard", "http1")]
)
def test_service_monitor_becomes_a_pod_monitor(mode: str, port: str) -> None:
    values = in_mode(load_values(BENTO_CHART / "ci" / "servicemonitor-values.yaml"), mode)
    objects = render_bento(values)
    monitor = one(objects, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": port, "path": "/metrics", "interval": "15s"}
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= predictor(objects)["labels"].items()
    )
    assert "ServiceMonitor" not in {o["kind"] for o in objects}


def test_inference_service_schema_refuses_unknown_fields() -> None:
    isvc = one(render_bento(kserve(minimal())), "InferenceService")
    validate_strictly(isvc)
    for where, typo in (
        (isvc["spec"]["predictor"], "minReplica"),
        (isvc["spec"]["predictor"]["containers"][0], "readinesProbe"),
    ):
        where[typo] = 1
        with pytest.raises(jsonschema.ValidationError, match=typo):
            crd_validator("InferenceService").validate(isvc)
        del where[typo]


# --- runtime configuration: Secrets, ConfigMaps, volumes -------------------------------------

RUNTIME = BENTO_CHART / "ci" / "runtime-config-values.yaml"


@pytest.mark.parametrize("mode", list(SERVING_MODES))
def test_env_and_volumes_from_secrets_and_config_maps(mode: str) -> None:
    _, pod = workload(render_bento(in_mode(load_values(RUNTIME), mode)))
    (container,) = pod["containers"]
    from_sources = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    assert from_sources == {
        "FEATURE_STORE_TOKEN": {"secretKeyRef": {"name": "iris-feature-store", "key": "token"}},
        "DECISION_THRESHOLD": {
            "configMapKeyRef": {"name": "iris-settings", "key": "threshold", "optional": True}
        },
    }
    assert env_of(container)["LOG_LEVEL"] == "info"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "iris-settings"}, "prefix": "IRIS_"},
        {"secretRef": {"name": "iris-credentials", "optional": True}},
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls-ca"]["secret"] == {
        "secretName": "iris-ca",
        "defaultMode": 288,
        "items": [{"key": "ca.crt", "path": "ca.pem"}],
    }
    assert volumes["lookup"]["configMap"] == {"name": "iris-lookup"}
    assert volumes["cache"]["emptyDir"] == {"sizeLimit": "256Mi"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # Secrets and ConfigMaps are read-only (Knative insists), emptyDirs writable.
    assert mounts["tls-ca"] == {"name": "tls-ca", "mountPath": "/etc/iris/ca", "readOnly": True}
    assert mounts["lookup"] == {
        "name": "lookup",
        "mountPath": "/etc/iris/lookup.json",
        "subPath": "lookup.json",
        "readOnly": True,
    }
    assert mounts["cache"] == {"name": "cache", "mountPath": "/var/cache/iris"}
    assert set(mounts) == set(volumes)


@pytest.mark.parametrize(
    ("bento", "key"),
    [
        (
            {"envValueFrom": {"T": {"secretKeyRef": {"name": "s"}}}},
            "/bento/envValueFrom/T/secretKeyRef",
        ),
        (
            {"envValueFrom": {"T": {"fieldRef": {"fieldPath": "metadata.name"}}}},
            "/bento/envValueFrom/T",
        ),
        (
            {
                "envValueFrom": {
                    "T": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    }
                }
            },
            "/bento/envValueFrom/T",
        ),
        (
            {"envValueFrom": {"1T": {"secretKeyRef": {"name": "s", "key": "k"}}}},
            "invalid propertyName '1T'",
        ),
        (
            {"envFrom": [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]},
            "/bento/envFrom/0",
        ),
        ({"envFrom": [{"prefix": "X_"}]}, "/bento/envFrom/0"),
        ({"volumes": {"v": {"mountPath": "/v"}}}, "/bento/volumes/v"),
        (
            {"volumes": {"v": {"mountPath": "/v", "emptyDir": {}, "secret": {"secretName": "s"}}}},
            "/bento/volumes/v",
        ),
        ({"volumes": {"v": {"mountPath": "/v", "hostPath": {"path": "/"}}}}, "/bento/volumes/v"),
        ({"volumes": {"tmp": {"mountPath": "/v", "emptyDir": {}}}}, "at '/bento/volumes/tmp'"),
        ({"volumes": {"v": {"mountPath": "/tmp", "emptyDir": {}}}}, "/bento/volumes/v/mountPath"),
        ({"volumes": {"v": {"mountPath": "etc/x", "emptyDir": {}}}}, "/bento/volumes/v/mountPath"),
        (
            {"volumes": {"v": {"mountPath": "/v", "emptyDir": {"medium": "HugePages"}}}},
            "/bento/volumes/v/emptyDir/medium",
        ),
        (
            {
                "volumes": {
                    "v": {
                        "mountPath": "/v",
                        "secret": {"secretName": "s", "items": [{"key": "k", "path": "../x"}]},
                    }
                }
            },
            "/bento/volumes/v/secret/items/0/path",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_runtime_config_fails_naming_the_value(bento: dict[str, Any], key: str) -> None:
    expected = key if key.startswith(("at ", "invalid ")) else f"at '{key}'"
    with pytest.raises(helm.HelmValuesError, match=re.escape(expected)):
        render_bento(minimal(bento=bento))


def test_runtime_config_conflicts_fail_naming_the_value() -> None:
    with pytest.raises(helm.HelmError, match=r"bento\.volumes\.home\.mountPath: /var/lib/bentoml"):
        render_bento(
            minimal(bento={"volumes": {"home": {"mountPath": "/var/lib/bentoml", "emptyDir": {}}}})
        )
    with pytest.raises(helm.HelmError, match=r"bento\.envValueFrom\.LOG_LEVEL: also set"):
        render_bento(
            minimal(
                bento={
                    "env": {"LOG_LEVEL": "info"},
                    "envValueFrom": {"LOG_LEVEL": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                }
            )
        )


# --- canary rollouts (Argo Rollouts) --------------------------------------------------------

CANARY = BENTO_CHART / "ci" / "canary-values.yaml"


def test_canary_rolls_the_deployments_pods_out_in_steps_with_analysis() -> None:
    values = load_values(CANARY)
    objects = render_bento(values)
    rollout, analysis = one(objects, "Rollout"), one(objects, "AnalysisTemplate")
    plain = one(render_bento({**values, "rollout": {"canary": {"enabled": False}}}), "Deployment")
    # The same pods and selector as the Deployment it replaces: only the strategy differs.
    for key in ("replicas", "selector", "template", "revisionHistoryLimit"):
        assert rollout["spec"][key] == plain["spec"][key], key
    assert rollout["metadata"]["annotations"] == plain["metadata"]["annotations"]
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["steps"] == [
        {"setWeight": 10},
        {"pause": {"duration": "5m"}},
        {"setWeight": 50},
        {"pause": {"duration": "5m"}},
    ]
    assert canary["analysis"]["templates"] == [{"templateName": analysis["metadata"]["name"]}]
    # The analysis reads the new pods only: Argo Rollouts passes their pod-template hash.
    hash_arg = {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}
    assert canary["analysis"]["args"] == [hash_arg]
    assert analysis["spec"]["args"] == [{"name": "canary-hash"}]
    namespace = rollout["metadata"]["namespace"]
    conditions = {m["name"]: m["successCondition"] for m in analysis["spec"]["metrics"]}
    assert conditions == {"error-rate": "result[0] <= 0.01", "p99-latency": "result[0] <= 0.5"}
    for metric in analysis["spec"]["metrics"]:
        assert (metric["interval"], metric["failureLimit"]) == ("1m", 1)
        prometheus = metric["provider"]["prometheus"]
        assert prometheus["address"] == "http://prometheus-operated.monitoring.svc:9090"
        # This environment's canary series only, and 0 rather than NaN or nothing when idle.
        assert f'namespace="{namespace}"' in prometheus["query"]
        assert prometheus["query"].count('rollouts_pod_template_hash="{{args.canary-hash}}"') == (
            prometheus["query"].count("{namespace=")
        )
        assert prometheus["query"].endswith("or on() vector(0)")
    assert (
        'http_response_code=~"5.."'
        in analysis["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    )


def test_canary_scrape_keeps_the_pod_template_hash() -> None:
    monitored = {"metrics": {"serviceMonitor": {"enabled": True}}}
    canary = one(render_bento(merge_values(load_values(CANARY), monitored)), "ServiceMonitor")
    validate_strictly(canary)
    assert canary["spec"]["podTargetLabels"] == ["rollouts-pod-template-hash"]
    plain = one(render_bento(merge_values(minimal(), monitored)), "ServiceMonitor")
    assert "podTargetLabels" not in plain["spec"]


def test_canary_autoscaling_targets_the_rollout() -> None:
    objects = render_bento(
        {
            **load_values(CANARY),
            "autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 8},
        }
    )
    target = one(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "iris-production",
    }
    assert "replicas" not in one(objects, "Rollout")["spec"]
    for obj in objects:
        validate_strictly(obj)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"environment": "feat-x"}, "at '/environment'"),  # never for previews
        ({"serving": {"mode": "kserve"}}, "at '/serving/mode'"),  # KServe has its own canary
        ({"rollout": {"canary": {"enabled": True, "steps": [0]}}}, "/rollout/canary/steps/0"),
        ({"rollout": {"canary": {"enabled": True, "steps": [100]}}}, "/rollout/canary/steps/0"),
        ({"rollout": {"canary": {"enabled": True, "pause": "five"}}}, "/rollout/canary/pause"),
        ({"rollout": {"canary": {"analysis": {"maxErrorRate": 2}}}}, "maxErrorRate"),
        ({"rollout": {"canary": {"analysis": {"prometheusAddress": "prom"}}}}, "prometheusAddress"),
        ({"rollout": {"canary": {"enabled": True, "step": [10]}}}, "step"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_canary_values_fail_naming_the_value(change: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(key)):
        render_bento(merge_values(load_values(CANARY), change))


def test_canary_steps_must_increase() -> None:
    with pytest.raises(helm.HelmError, match=r"rollout.canary.steps: \[50 10\] does not increase"):
        render_bento(
            merge_values(load_values(CANARY), {"rollout": {"canary": {"steps": [50, 10]}}})
        )


def test_canary_is_off_by_default() -> None:
    kinds = {o["kind"] for o in render_bento(minimal())}
    assert "Deployment" in kinds and not kinds & {"Rollout", "AnalysisTemplate"}


# --- batch scoring: a CronJob in the model image --------------------------------------------

BATCH = BENTO_CHART / "ci" / "batch-values.yaml"


def batch_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]


def test_batch_scores_in_the_model_image_between_object_store_copies() -> None:
    objects = render_bento(load_values(BATCH))
    cronjob, template = one(objects, "CronJob"), batch_pod(objects)
    pod = template["spec"]
    assert cronjob["spec"]["schedule"] == "30 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"  # two runs would race on one output
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    # Init containers run in order and must all succeed: the upload runs only after the score.
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "score"]
    assert [c["name"] for c in pod["containers"]] == ["store"]
    (fetch, score), (store,) = pod["initContainers"], pod["containers"]
    assert fetch["command"] == ["rclone"] and store["command"] == ["rclone"]
    assert fetch["args"][-2:] == [":s3:iris-data/incoming/today.csv", "/work/in/today.csv"]
    assert score["args"] == ["--input", "/work/in/today.csv", "--output", "/work/today.csv"]
    assert store["args"][-2:] == ["/work/today.csv", ":s3:iris-data/scores/today.csv"]
    # The image the service runs, its package's scorer, on the model that image serves.
    (service,) = pod_spec(objects)["containers"]
    assert score["image"] == service["image"] == "127.0.0.1:5000/iris:3f2a1b4"
    assert score["command"] == ["python", "-m", "iris.serving.batch"]
    assert env_of(score)["PYTHONPATH"] == "/home/bentoml/bento/src"
    assert env_of(fetch)["RCLONE_S3_PROVIDER"] == "AWS"
    assert store["envFrom"] == [{"secretRef": {"name": "iris-batch-s3"}}]
    for container in (fetch, score, store):
        assert_restricted(container)
    assert score["resources"] == load_values(BENTO_CHART / "values.yaml")["resources"]
    # A batch pod never receives the service's traffic, nor counts in its disruption budget.
    selector = one(objects, "Service")["spec"]["selector"]
    assert not selector.items() <= template["metadata"]["labels"].items()
    assert {v["name"] for v in pod["volumes"]} == {"bentoml-home", "tmp", "work"}


@pytest.mark.parametrize(
    ("url", "remote"),
    [
        ("gs://scores-bucket/2026/x.csv", ":gcs:scores-bucket/2026/x.csv"),
        ("az://container/x.csv", ":azureblob:container/x.csv"),
    ],
)
def test_each_object_store_is_its_rclone_remote(url: str, remote: str) -> None:
    values = load_values(BATCH)
    values["batch"] = {**values["batch"], "input": url}
    fetch = batch_pod(render_bento(values))["spec"]["initContainers"][0]
    assert fetch["args"][-2:] == [remote, f"/work/in/{url.rsplit('/', 1)[1]}"]


def test_batch_between_files_on_a_claim_is_one_container() -> None:
    objects = render_bento(load_values(BENTO_CHART / "ci" / "batch-volume-values.yaml"))
    pod = batch_pod(objects)["spec"]
    assert "initContainers" not in pod
    (score,) = pod["containers"]
    assert score["args"] == ["--input", "/data/in/requests.csv", "--output", "/data/out/scores.csv"]
    assert {"name": "data", "mountPath": "/data"} in score["volumeMounts"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "iris-batch"}} in pod["volumes"]
    assert "work" not in {v["name"] for v in pod["volumes"]}
    assert env_of(score)["OMP_NUM_THREADS"] == "2"  # its own CPU limit, not the service's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": ""}, "/batch/input"),
        ({"input": "data/in.csv"}, "/batch/input"),
        ({"input": "https://example.com/in.csv"}, "/batch/input"),
        ({"output": "s3://bucket/"}, "/batch/output"),
        ({"schedule": "nightly"}, "/batch/schedule"),
        ({"chunkRows": 0}, "/batch/chunkRows"),
        ({"copier": {"envFrom": [{"secretRef": {}}]}}, "/batch/copier/envFrom/0"),
        ({"inputs": "s3://b/x.csv"}, "inputs"),
    ],
)
def test_bad_batch_values_fail_naming_the_key(change: dict[str, Any], message: str) -> None:
    values = load_values(BATCH)
    values["batch"] = {**values["batch"], **change}
    with pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        render_bento(values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": "/data/in.csv"}, 'batch.input: "/data/in.csv" is a path, which needs'),
        (
            {"output": "/srv/out.csv", "persistentVolumeClaim": "claim"},
            'batch.output: "/srv/out.csv" is not under batch.dataDir (/data)',
        ),
    ],
)
def test_batch_paths_need_the_claim_they_live_on(change: dict[str, Any], message: str) -> None:
    values = load_values(BATCH)
    values["batch"] = {**values["batch"], **change}
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render_bento(values)
