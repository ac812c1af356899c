"""The Helm charts under charts/: rendered by the real Helm 4 engine, validated against the
Kubernetes and Argo CD schemas, checked for Pod Security "restricted" and by checkov, and played
through the ApplicationSets over a sample GitOps tree. No cluster, no network."""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helpers.charts import (
    APPS_CHART,
    BENTO_CHART,
    application,
    generate,
    load_values,
    one,
    render,
    render_bento,
)
from helpers.project import require_tool

BENTO_SCENARIOS = sorted(BENTO_CHART.glob("ci/*-values.yaml"))
APPS_SCENARIOS = sorted(APPS_CHART.glob("ci/*-values.yaml"))
MINIMAL = BENTO_CHART / "ci" / "minimal-values.yaml"
K8S_VERSION = kubernetes_validate.latest_version()
# Schemas of the kinds that CRDs define (kubernetes-validate knows the built-in kinds only),
# vendored under tests/schemas/ (see its README).
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    "Application": "argocd-v3.4.4/application.strict.json",
    "ApplicationSet": "argocd-v3.4.4/applicationset.strict.json",
    "AppProject": "argocd-v3.4.4/appproject.strict.json",
    "ServiceMonitor": "crds-catalog/monitoring.coreos.com/servicemonitor_v1.json",
}

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
NASTY_BRANCH = (
    "feat/x \"quoted\" 'single' $HOME `id` {{ .Values.project }} ${{ secrets.X }} ünï: [a, b] # c"
)


def minimal(**overrides: Any) -> dict[str, Any]:
    """The deploy tool's minimal values file, with top-level keys replaced."""
    return {**load_values(MINIMAL), **overrides}


def scenario_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def crd_schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / CRD_SCHEMAS[kind]).read_text())


def validate_strictly(obj: dict[str, Any]) -> None:
    """Against the schema the API server would enforce, refusing unknown fields."""
    if obj["kind"] in CRD_SCHEMAS:
        jsonschema.validate(obj, crd_schema(obj["kind"]))
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


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


def _key_mismatches(values: dict[str, Any], schema: dict[str, Any], where: str = "") -> list[str]:
    """Where values.yaml and the schema disagree on the keys of a fixed-structure object."""
    out = []
    if set(values) != set(schema["properties"]):
        out.append(f"{where or '/'}: {sorted(set(values) ^ set(schema['properties']))}")
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += _key_mismatches(value, schema["properties"][key], f"{where}/{key}")
    return out


def _open_objects(schema: dict[str, Any], where: str = "") -> list[str]:
    """Paths of schema objects that accept any key with any value."""
    found = []
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        found.append(where or "/")
    for key, sub in schema.get("properties", {}).items():
        found += _open_objects(sub, f"{where}/{key}")
    if isinstance(schema.get("items"), dict):
        found += _open_objects(schema["items"], f"{where}[]")
    return found


@pytest.mark.parametrize("chart", [BENTO_CHART, APPS_CHART], ids=lambda c: c.name)
def test_schema_matches_values_and_refuses_unknown_keys(chart: Path) -> None:
    schema = json.loads((chart / "values.schema.json").read_text())
    assert _key_mismatches(load_values(chart / "values.yaml"), schema) == []
    # Affinity terms are Kubernetes' own structure, validated by the API server.
    assert _open_objects(schema) == (
        ["/affinity/nodeAffinity", "/affinity/podAffinity", "/affinity/podAntiAffinity"]
        if chart == BENTO_CHART
        else []
    )


# --- documentation -------------------------------------------------------------------------


def _docs_module() -> Any:
    spec = importlib.util.spec_from_file_location("chart_docs", BENTO_CHART / "docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("chart", [BENTO_CHART, APPS_CHART], ids=lambda c: c.name)
def test_readme_parameters_table_is_current(chart: Path) -> None:
    docs = _docs_module()
    readme = (chart / "README.md").read_text()
    assert docs.render_readme(readme, (chart / "values.yaml").read_text()) == readme, (
        f"run: python charts/bento-service/docs.py charts/{chart.name}"
    )


def test_docs_refuses_undocumented_values() -> None:
    docs = _docs_module()
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


# --- Argo CD objects -------------------------------------------------------------------------


def render_apps(scenario: Path) -> list[dict[str, Any]]:
    return render(APPS_CHART, load_values(scenario), name="model-environments", namespace="argocd")


@pytest.mark.parametrize("scenario", APPS_SCENARIOS, ids=scenario_id)
def test_model_environments_lint_and_validate(scenario: Path) -> None:
    report = helm.lint(APPS_CHART, load_values(scenario), strict=True, namespace="argocd")
    assert [m for m in report["messages"] if m["severity"] >= 2] + report["errors"] == []
    objects = render_apps(scenario)
    assert objects
    for obj in objects:
        validate_strictly(obj)


def test_argocd_schema_rejects_a_typo() -> None:
    """The strict schemas catch what a permissive API server would silently prune."""
    appset = one(render_apps(APPS_SCENARIOS[0]), "ApplicationSet")
    bad = copy.deepcopy(appset)
    bad["spec"]["template"]["spec"]["syncPolicy"]["automated"]["prunee"] = True
    with pytest.raises(jsonschema.ValidationError, match="prunee"):
        jsonschema.validate(bad, crd_schema("ApplicationSet"))


def test_model_environments_requires_pinned_chart_and_repos() -> None:
    values = load_values(APPS_CHART / "ci" / "default-values.yaml")
    with pytest.raises(helm.HelmValuesError, match="/chart/targetRevision"):
        render(
            APPS_CHART,
            {**values, "chart": {**values["chart"], "targetRevision": "HEAD"}},
            name="model-environments",
            namespace="argocd",
        )
    with pytest.raises(helm.HelmValuesError, match="/gitops/repoURL"):
        render(
            APPS_CHART, {"chart": values["chart"]}, name="model-environments", namespace="argocd"
        )


def _appsets(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    appsets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ApplicationSet"}
    return appsets["ml-previews"], appsets["ml-production"]


def test_applicationset_policies() -> None:
    objects = render_apps(APPS_CHART / "ci" / "default-values.yaml")
    preview, production = _appsets(objects)
    for appset in (preview, production):
        spec = appset["spec"]
        assert spec["goTemplate"] is True
        assert spec["goTemplateOptions"] == ["missingkey=error"]
        app = spec["template"]["spec"]
        assert app["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=true" not in app["syncPolicy"]["syncOptions"]
        chart_source, values_source = app["sources"]
        assert chart_source["targetRevision"] == "v0.1.0"
        assert chart_source["helm"]["valueFiles"][0].startswith("$values/")
        assert values_source["ref"] == "values"
    assert preview["spec"]["syncPolicy"] == {
        "applicationsSync": "sync",
        "preserveResourcesOnDeletion": False,
    }
    assert preview["spec"]["template"]["metadata"]["finalizers"] == [
        "resources-finalizer.argocd.argoproj.io"
    ]
    assert preview["spec"]["generators"][0]["git"]["files"] == [
        {"path": "envs/*/*/values.yaml"},
        {"path": "envs/*/production/values.yaml", "exclude": True},
    ]
    # Production: never deleted by the controller, never cascaded.
    assert production["spec"]["syncPolicy"] == {
        "applicationsSync": "create-update",
        "preserveResourcesOnDeletion": True,
    }
    assert "finalizers" not in production["spec"]["template"]["metadata"]
    assert production["spec"]["generators"][0]["git"]["files"] == [
        {"path": "envs/*/production/values.yaml"}
    ]


# --- what Argo CD makes from a GitOps tree -------------------------------------------------

ENVS = {
    ("iris", "production"): {"lineage": {"branch": "main"}},
    ("iris", "feat-x-1a2b3c4d"): {
        "lineage": {"branch": NASTY_BRANCH},
        "ingress": {"enabled": True, "host": "iris-feat-x-1a2b3c4d.preview.localhost"},
    },
    ("iris", "feat-a-0f0f0f0f"): {"lineage": {"branch": "feat/a"}},
    ("breast-cancer-classifier", "production"): {},
    ("breast-cancer-classifier", "a" * 28): {},
}


@pytest.fixture
def gitops_repo(tmp_path: Path) -> Path:
    """A GitOps repo as the deploy tool leaves it: one values file per environment."""
    repo = tmp_path / "gitops"
    for (project, env), extra in ENVS.items():
        values = {
            "project": project,
            "environment": env,
            "image": {"repository": f"127.0.0.1:5000/{project}", "tag": "3f2a1b4"},
            **extra,
        }
        path = repo / "envs" / project / env / "values.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(values))
    (repo / "README.md").write_text("not an environment\n")
    return repo


def deployed(repo: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    """Application name -> {"app": Application, "objects": its rendered objects}."""
    objects = render_apps(APPS_CHART / "ci" / "default-values.yaml")
    result: dict[str, dict[str, Any]] = {}
    for appset in _appsets(objects):
        for params in generate(appset, repo):
            app = application(appset, params, workdir)
            name = app["metadata"]["name"]
            assert name not in result, f"two Applications named {name}"
            chart_source = app["spec"]["sources"][0]
            (values_file,) = chart_source["helm"]["valueFiles"]
            values = load_values(repo / values_file.removeprefix("$values/"))
            result[name] = {
                "app": app,
                "objects": render(
                    BENTO_CHART,
                    values,
                    name=chart_source["helm"]["releaseName"],
                    namespace=app["spec"]["destination"]["namespace"],
                ),
            }
    return result


def _allowed(namespace: str, patterns: list[str]) -> bool:
    """Argo CD's AppProject destination match: some pattern allows, no `!pattern` denies."""
    denied = any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!"))
    return not denied and any(fnmatch.fnmatchcase(namespace, p) for p in patterns if p[0] != "!")


def test_gitops_tree_yields_one_valid_application_per_env(
    gitops_repo: Path, tmp_path: Path
) -> None:
    envs = deployed(gitops_repo, tmp_path)
    assert set(envs) == {f"{p}-{e}" for p, e in ENVS}
    app_project = one(render_apps(APPS_CHART / "ci" / "default-values.yaml"), "AppProject")
    project = app_project["spec"]
    allowed_kinds = {
        (r["group"], r["kind"])
        for r in project["clusterResourceWhitelist"] + project["namespaceResourceWhitelist"]
    }
    seen: set[tuple[str, str, str]] = set()
    for name, env in envs.items():
        app = env["app"]
        jsonschema.validate(app, crd_schema("Application"))
        assert DNS1035.match(name) and len(name) <= 53
        assert app["spec"]["destination"]["namespace"] == name
        assert app["spec"]["sources"][0]["helm"]["releaseName"] == name
        assert app["spec"]["project"] == app_project["metadata"]["name"]
        assert _allowed(name, [d["namespace"] for d in project["destinations"]])
        assert {s["repoURL"] for s in app["spec"]["sources"]} <= set(project["sourceRepos"])
        production = name.endswith("-production")
        assert ("finalizers" in app["metadata"]) is not production
        for obj in env["objects"]:
            group = obj["apiVersion"].rpartition("/")[0]
            assert (group, obj["kind"]) in allowed_kinds
            key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            assert key not in seen, f"{key} rendered by two environments"
            seen.add(key)
            assert obj["metadata"].get("namespace", name) == name


def test_removing_a_values_file_removes_exactly_that_env(gitops_repo: Path, tmp_path: Path) -> None:
    def inventory(envs: dict[str, dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for env in envs.values()
            for o in env["objects"]
        } | {("Application", "argocd", name) for name in envs}

    before = deployed(gitops_repo, tmp_path)
    gone = before["iris-feat-x-1a2b3c4d"]
    (gitops_repo / "envs" / "iris" / "feat-x-1a2b3c4d" / "values.yaml").unlink()
    after = deployed(gitops_repo, tmp_path)
    removed = inventory(before) - inventory(after)
    assert removed == inventory({"iris-feat-x-1a2b3c4d": gone})
    assert inventory(after) <= inventory(before)
    assert ("Namespace", "", "iris-feat-x-1a2b3c4d") in removed


def test_generator_params_match_argocd(gitops_repo: Path) -> None:
    preview, _ = _appsets(render_apps(APPS_CHART / "ci" / "default-values.yaml"))
    params = {p["path"]["path"]: p for p in generate(preview, gitops_repo)}
    assert set(params) == {f"envs/{p}/{e}" for p, e in ENVS if e != "production"}, (
        "previews exclude production and non-values files"
    )
    iris = params["envs/iris/feat-x-1a2b3c4d"]
    assert iris["path"]["segments"] == ["envs", "iris", "feat-x-1a2b3c4d"]
    assert iris["path"]["basename"] == "feat-x-1a2b3c4d"
    assert iris["path"]["filename"] == "values.yaml"
    assert iris["lineage"]["branch"] == NASTY_BRANCH
