"""Render the charts with the real Helm 4 engine, validate what they render against the schemas
the API server would enforce, and play Argo CD's ApplicationSets offline.

Argo CD's Git files generator is emulated from its source (applicationset/generators/git.go):
each matching file's YAML mapping becomes the parameters, plus `path` = {path, basename,
filename, basenameNormalized, filenameNormalized, segments} of the file's directory. The
ApplicationSet's `template` is then evaluated as a Go template with those parameters, by
Helm's engine (same text/template and Sprig functions as Argo CD's goTemplate mode).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

from helpers.project import TEMPLATE

CHARTS = TEMPLATE / "charts"
BENTO_CHART = CHARTS / "bento-service"
APPS_CHART = CHARTS / "model-environments"
K8S_VERSION = kubernetes_validate.latest_version()
# Schemas of the kinds that CRDs define (kubernetes-validate knows the built-in kinds only),
# vendored under tests/schemas/ (see its README).
SCHEMAS = TEMPLATE / "tests" / "schemas"
CRD_SCHEMAS = {
    "Application": "argocd-v3.4.4/application.strict.json",
    "ApplicationSet": "argocd-v3.4.4/applicationset.strict.json",
    "AppProject": "argocd-v3.4.4/appproject.strict.json",
    "ServiceMonitor": "crds-catalog/monitoring.coreos.com/servicemonitor_v1.json",
    "PodMonitor": "crds-catalog/monitoring.coreos.com/podmonitor_v1.json",
    "PrometheusRule": "crds-catalog/monitoring.coreos.com/prometheusrule_v1.json",
    "InferenceService": "crds-catalog/serving.kserve.io/inferenceservice_v1beta1.json",
    "Rollout": "crds-catalog/argoproj.io/rollout_v1alpha1.json",
    "AnalysisTemplate": "crds-catalog/argoproj.io/analysistemplate_v1alpha1.json",
}
# The API version each CRD schema describes (the CRDs-catalog files do not pin it themselves).
CRD_API_VERSIONS = {
    "Application": "argoproj.io/v1alpha1",
    "ApplicationSet": "argoproj.io/v1alpha1",
    "AppProject": "argoproj.io/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "InferenceService": "serving.kserve.io/v1beta1",
    "Rollout": "argoproj.io/v1alpha1",
    "AnalysisTemplate": "argoproj.io/v1alpha1",
}
# The serving modes the platform team chooses between (model-environments `serving`), as the
# values each ApplicationSet adds over a model repo's values file.
SERVING_MODES = {
    "deployment": {"serving": {"mode": "deployment"}},
    "kserve-knative": {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": "Knative"}},
    "kserve-standard": {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": "Standard"}},
}

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NASTY_BRANCH = (
    "feat/x \"quoted\" 'single' $HOME `id` {{ .Values.project }} ${{ secrets.X }} ünï: [a, b] # c"
)

Manifest = dict[str, Any]


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base` as Helm merges values files: maps deeply, anything else replaced,
    and a null deletes the key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def in_mode(values: dict[str, Any], mode: str) -> dict[str, Any]:
    """A values file as the ApplicationSet of a platform running `mode` renders it."""
    return merge_values(values, SERVING_MODES[mode])


def release_name(values: dict[str, Any]) -> str:
    return f"{values['project']}-{values['environment']}"


def render(chart: Path, values: dict[str, Any], name: str, namespace: str) -> list[Manifest]:
    """Every object the chart renders (NOTES.txt and empty templates left out)."""
    with helm.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name=name, namespace=namespace)
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def render_bento(values: dict[str, Any]) -> list[Manifest]:
    """The bento-service chart as Argo CD installs it: release and namespace <project>-<env>."""
    name = release_name(values)
    return render(BENTO_CHART, values, name=name, namespace=name)


def one(objects: list[Manifest], kind: str) -> Manifest:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def git_files_params(repo: Path, file: Path) -> dict[str, Any]:
    """The goTemplate parameters Argo CD's Git files generator yields for one file."""
    directory = PurePosixPath(file.relative_to(repo).parent.as_posix())
    params = dict(load_values(file))
    params["path"] = {
        "path": str(directory),
        "basename": directory.name,
        "filename": file.name,
        "basenameNormalized": _sanitize(directory.name),
        "filenameNormalized": _sanitize(file.name),
        "segments": str(directory).split("/"),
    }
    return params


def _sanitize(name: str) -> str:
    # Argo CD's utils.SanitizeName: invalid characters become '-', trimmed to 253.
    return re.sub(r"[^-a-z0-9.]", "-", name.lower()).strip("-.")[:253]


def generate(appset: Manifest, repo: Path) -> list[dict[str, Any]]:
    """Parameters of every file the ApplicationSet's Git files generator matches in `repo`."""
    (generator,) = appset["spec"]["generators"]
    rules = generator["git"]["files"]
    include = [r["path"] for r in rules if not r.get("exclude")]
    exclude = [r["path"] for r in rules if r.get("exclude")]

    def matches(relative: str, pattern: str) -> bool:
        parts, globs = PurePosixPath(relative).parts, PurePosixPath(pattern).parts
        return len(parts) == len(globs) and PurePosixPath(relative).match(pattern)

    files = sorted(
        file
        for file in repo.rglob("*")
        if file.is_file()
        and any(matches(file.relative_to(repo).as_posix(), p) for p in include)
        and not any(matches(file.relative_to(repo).as_posix(), p) for p in exclude)
    )
    return [git_files_params(repo, f) for f in files]


def application(appset: Manifest, params: dict[str, Any], workdir: Path) -> Manifest:
    """The Application an ApplicationSet template yields for one parameter set.

    The template goes through Helm's Go template engine as JSON text, with the parameters
    as the root object (`{{ with .Values }}`), as Argo CD evaluates each string field.
    """
    chart = workdir / "appset-template"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: appset-template\nversion: 0.0.0\n")
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        **appset["spec"]["template"],
    }
    (chart / "templates" / "application.json").write_text(
        "{{- with .Values }}" + json.dumps(app) + "{{- end }}"
    )
    with helm.Chart.load(chart) as loaded:
        (text,) = loaded.render(params, name="appset", namespace="argocd").values()
    return json.loads(text)


def scenario_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


@functools.cache
def _crd_text(kind: str) -> str:
    return (SCHEMAS / CRD_SCHEMAS[kind]).read_text()


def crd_schema(kind: str) -> dict[str, Any]:
    return json.loads(_crd_text(kind))


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    """A checked validator per CRD kind (the KServe schema is 1.4 MB: check it once)."""
    schema = crd_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_strictly(obj: dict[str, Any]) -> None:
    """Against the schema the API server would enforce, refusing unknown fields."""
    if obj["kind"] in CRD_SCHEMAS:
        assert obj["apiVersion"] == CRD_API_VERSIONS[obj["kind"]], obj["apiVersion"]
        crd_validator(obj["kind"]).validate(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def application_values(app: Manifest, repo: Path) -> dict[str, Any]:
    """The values Argo CD renders an Application's chart source with: its value files from the
    `ref: values` source (here the GitOps checkout `repo`), then `helm.valuesObject` over them
    (Argo CD's precedence: valuesObject > values > valueFiles)."""
    helm_source = app["spec"]["sources"][0]["helm"]
    values: dict[str, Any] = {}
    for values_file in helm_source["valueFiles"]:
        values = merge_values(values, load_values(repo / values_file.removeprefix("$values/")))
    return merge_values(values, helm_source.get("valuesObject", {}))


def key_mismatches(
    values: dict[str, Any], schema: dict[str, Any], where: str = "", root: dict | None = None
) -> list[str]:
    """Where values.yaml and the schema disagree on the keys of a fixed-structure object."""
    root = root or schema
    if "$ref" in schema:  # a reference within the file: `#/properties/...`
        schema = functools.reduce(dict.__getitem__, schema["$ref"][2:].split("/"), root)
    out = []
    if set(values) != set(schema["properties"]):
        out.append(f"{where or '/'}: {sorted(set(values) ^ set(schema['properties']))}")
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += key_mismatches(value, schema["properties"][key], f"{where}/{key}", root)
    return out


def open_objects(schema: dict[str, Any] | bool, where: str = "") -> list[str]:
    """Paths of schema objects that accept any key with any value (maps' values included)."""
    if isinstance(schema, bool):  # `false` accepts nothing, `true` is not used
        return [where] if schema else []
    found = []
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        found.append(where or "/")
    for key, sub in schema.get("properties", {}).items():
        found += open_objects(sub, f"{where}/{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += open_objects(schema["additionalProperties"], f"{where}/*")
    if isinstance(schema.get("items"), dict):
        found += open_objects(schema["items"], f"{where}[]")
    return found


def docs_module() -> Any:
    """charts/bento-service/docs.py, which builds the charts' README parameter tables."""
    spec = importlib.util.spec_from_file_location("chart_docs", BENTO_CHART / "docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def promql_selectors(expression: str) -> list[tuple[str, dict[str, str]]]:
    """Every series selector of a PromQL expression as (metric name, its `=` matchers), parsed by
    the Prometheus parser's Rust port (a syntax error raises ValueError)."""
    import promql_parser

    found: list[tuple[str, dict[str, str]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            equal = {
                m.name: m.value for m in node.matchers.matchers if str(m.op) == "MatchOp.Equal"
            }
            found.append((node.name, equal))
        for field in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
            value = getattr(node, field, None)
            for child in value if isinstance(value, list) else [value]:
                if type(child).__module__.startswith("promql_parser"):
                    walk(child)

    walk(promql_parser.parse(expression))
    return found


def alert_selectors(rule: Manifest) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Alert name -> the selectors of its expression, for every rule of a PrometheusRule."""
    return {
        entry["alert"]: promql_selectors(entry["expr"])
        for group in rule["spec"]["groups"]
        for entry in group["rules"]
    }


def dashboard_selectors(config_map: Manifest) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Panel title -> the selectors of its queries, for the Grafana dashboard in a ConfigMap."""
    (text,) = config_map["data"].values()
    return {
        panel["title"]: [
            selector for target in panel["targets"] for selector in promql_selectors(target["expr"])
        ]
        for panel in json.loads(text)["panels"]
    }
