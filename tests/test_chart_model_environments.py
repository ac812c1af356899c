"""The model-environments chart (Argo CD AppProject and ApplicationSets): rendered by the real
Helm 4 engine, validated against the Argo CD schemas, and played through the ApplicationSets over
a sample GitOps tree into bento-service releases. No cluster, no network."""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml
from helpers.charts import (
    APPS_CHART,
    BENTO_CHART,
    DNS1035,
    NASTY_BRANCH,
    application,
    application_values,
    crd_schema,
    docs_module,
    generate,
    key_mismatches,
    load_values,
    one,
    open_objects,
    render,
    render_bento,
    scenario_id,
    validate_strictly,
)

APPS_SCENARIOS = sorted(APPS_CHART.glob("ci/*-values.yaml"))
DEFAULT = APPS_CHART / "ci" / "default-values.yaml"
KSERVE = APPS_CHART / "ci" / "kserve-values.yaml"
KSERVE_STANDARD = APPS_CHART / "ci" / "kserve-standard-values.yaml"
PLATFORMS = [DEFAULT, KSERVE, KSERVE_STANDARD]


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


@pytest.mark.parametrize("platform", PLATFORMS, ids=scenario_id)
def test_applicationset_policies(platform: Path) -> None:
    """The same in every serving mode: teardown works the same, production never deletes."""
    objects = render_apps(platform)
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


# --- values schema and documentation ---------------------------------------------------------


def test_schema_matches_values_and_refuses_unknown_keys() -> None:
    schema = json.loads((APPS_CHART / "values.schema.json").read_text())
    assert key_mismatches(load_values(APPS_CHART / "values.yaml"), schema) == []
    assert open_objects(schema) == []


def test_readme_parameters_table_is_current() -> None:
    docs = docs_module()
    readme = (APPS_CHART / "README.md").read_text()
    assert docs.render_readme(readme, (APPS_CHART / "values.yaml").read_text()) == readme, (
        f"run: python charts/bento-service/docs.py charts/{APPS_CHART.name}"
    )


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


def deployed(repo: Path, workdir: Path, platform: Path = DEFAULT) -> dict[str, dict[str, Any]]:
    """Application name -> {"app": Application, "objects": its rendered objects}, on a platform
    installed with the model-environments values `platform`."""
    objects = render_apps(platform)
    result: dict[str, dict[str, Any]] = {}
    for appset in _appsets(objects):
        for params in generate(appset, repo):
            app = application(appset, params, workdir)
            name = app["metadata"]["name"]
            assert name not in result, f"two Applications named {name}"
            chart_source = app["spec"]["sources"][0]
            result[name] = {
                "app": app,
                "objects": render(
                    BENTO_CHART,
                    application_values(app, repo),
                    name=chart_source["helm"]["releaseName"],
                    namespace=app["spec"]["destination"]["namespace"],
                ),
            }
    return result


def _allowed(namespace: str, patterns: list[str]) -> bool:
    """Argo CD's AppProject destination match: some pattern allows, no `!pattern` denies."""
    denied = any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!"))
    return not denied and any(fnmatch.fnmatchcase(namespace, p) for p in patterns if p[0] != "!")


@pytest.mark.parametrize("platform", PLATFORMS, ids=scenario_id)
def test_gitops_tree_yields_one_valid_application_per_env(
    gitops_repo: Path, tmp_path: Path, platform: Path
) -> None:
    envs = deployed(gitops_repo, tmp_path, platform)
    assert set(envs) == {f"{p}-{e}" for p, e in ENVS}
    app_project = one(render_apps(platform), "AppProject")
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
            validate_strictly(obj)
            group = obj["apiVersion"].rpartition("/")[0]
            assert (group, obj["kind"]) in allowed_kinds
            key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            assert key not in seen, f"{key} rendered by two environments"
            seen.add(key)
            assert obj["metadata"].get("namespace", name) == name


def test_the_project_permits_every_kind_the_service_chart_can_render() -> None:
    """Argo CD refuses to sync a kind its AppProject does not list: every optional object of
    bento-service (canary, alerts, dashboard, batch CronJob...) must be listed."""
    spec = one(render_apps(DEFAULT), "AppProject")["spec"]
    listed = spec["clusterResourceWhitelist"] + spec["namespaceResourceWhitelist"]
    allowed = {(r["group"], r["kind"]) for r in listed}
    rendered = {
        (obj["apiVersion"].rpartition("/")[0], obj["kind"])
        for scenario in sorted(BENTO_CHART.glob("ci/*-values.yaml"))
        for obj in render_bento(load_values(scenario))
    }
    assert rendered - allowed == set()
    assert allowed - rendered == set(), "listed but never rendered: a stale entry"


@pytest.mark.parametrize("platform", PLATFORMS, ids=scenario_id)
def test_removing_a_values_file_removes_exactly_that_env(
    gitops_repo: Path, tmp_path: Path, platform: Path
) -> None:
    def inventory(envs: dict[str, dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for env in envs.values()
            for o in env["objects"]
        } | {("Application", "argocd", name) for name in envs}

    before = deployed(gitops_repo, tmp_path, platform)
    gone = before["iris-feat-x-1a2b3c4d"]
    # The Application goes (applicationsSync: sync) and its resources finalizer deletes what it
    # deployed: the InferenceService in kserve mode (KServe's own objects follow by owner
    # references), the Namespace in both.
    assert gone["app"]["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    (gitops_repo / "envs" / "iris" / "feat-x-1a2b3c4d" / "values.yaml").unlink()
    after = deployed(gitops_repo, tmp_path, platform)
    removed = inventory(before) - inventory(after)
    assert removed == inventory({"iris-feat-x-1a2b3c4d": gone})
    assert inventory(after) <= inventory(before)
    assert ("Namespace", "", "iris-feat-x-1a2b3c4d") in removed
    workload = "Deployment" if platform == DEFAULT else "InferenceService"
    assert (workload, "iris-feat-x-1a2b3c4d", "iris-feat-x-1a2b3c4d") in removed
    # Production is untouched, and its Application carries no finalizer to cascade with.
    assert "finalizers" not in after["iris-production"]["app"]["metadata"]


@pytest.mark.parametrize(
    ("platform", "preview", "production"),
    [
        (DEFAULT, {"serving": {"mode": "deployment"}}, {"serving": {"mode": "deployment"}}),
        (
            KSERVE,
            {
                "serving": {"mode": "kserve"},
                "kserve": {"deploymentMode": "Knative", "minReplicas": 0},
            },
            {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": "Knative"}},
        ),
        (
            KSERVE_STANDARD,
            {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": "Standard"}},
            {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": "Standard"}},
        ),
    ],
    ids=lambda v: scenario_id(v) if isinstance(v, Path) else None,
)
def test_the_platform_chooses_the_serving_mode(
    gitops_repo: Path,
    tmp_path: Path,
    platform: Path,
    preview: dict[str, Any],
    production: dict[str, Any],
) -> None:
    """The mode reaches every Application as chart values over the unchanged values file;
    previews may scale to zero, production keeps its floor."""
    before = {f: f.read_text() for f in gitops_repo.rglob("*.yaml")}
    envs = deployed(gitops_repo, tmp_path, platform)
    for name, env in envs.items():
        helm_source = env["app"]["spec"]["sources"][0]["helm"]
        expected = production if name.endswith("-production") else preview
        assert helm_source["valuesObject"] == expected
        if expected["serving"]["mode"] == "kserve":
            (isvc,) = [o for o in env["objects"] if o["kind"] == "InferenceService"]
            annotations = isvc["metadata"]["annotations"]
            assert (
                annotations["serving.kserve.io/deploymentMode"]
                == expected["kserve"]["deploymentMode"]
            )
            floor = isvc["spec"]["predictor"]["minReplicas"]
            assert floor == (expected["kserve"].get("minReplicas", 1))
    assert before == {f: f.read_text() for f in gitops_repo.rglob("*.yaml")}


@pytest.mark.parametrize(
    ("serving", "key"),
    [
        ({"mode": "knative"}, "/serving/mode"),
        (
            {"mode": "kserve", "kserve": {"deploymentMode": "Serverless"}},
            "/serving/kserve/deploymentMode",
        ),
        (
            {
                "mode": "kserve",
                "kserve": {"deploymentMode": "Standard", "previewScaleToZero": True},
            },
            "/serving/kserve/previewScaleToZero",
        ),
        (
            {"mode": "deployment", "kserve": {"previewScaleToZero": True}},
            "/serving/kserve/previewScaleToZero",
        ),
        ({"mode": "kserve", "kserve": {"minReplicas": 0}}, "minReplicas"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_serving_values_fail_naming_the_value(serving: dict[str, Any], key: str) -> None:
    values = {**load_values(DEFAULT), "serving": serving}
    with pytest.raises(helm.HelmValuesError, match=key):
        render(APPS_CHART, values, name="model-environments", namespace="argocd")


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
