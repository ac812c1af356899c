"""`make demo`: the whole loop on one machine, on the embedded defaults.

Generate a model repo, branch, run the pipeline (the CI jobs' make targets, in CI order), deploy
the branch to a local GitOps repo, render what Argo CD would apply, serve and predict, merge to
the default branch (production, behind the quality gate), tear the branch down, roll production
back, and summarise. Everything lands in demo/ (git-ignored); run it again to start over.

No cluster reads the local GitOps repo, so each deploy's environment is stood in for by the
Bento its image holds, served on 127.0.0.1 with the image reference the chart gives the pod:
the deploy's rollout check (DEPLOY_BASE_URL, DEPLOY_WAIT) then verifies a real server.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import helm_python as helm
import pandas as pd
import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DEMO = TEMPLATE / "demo"
CACHE = TEMPLATE / ".cache"
BRANCH = "feature/stronger-regularisation"
REGISTRY_PORT = 5000
ENVIRONMENT_PORT = 3999  # where the stand-in of the environment being deployed serves
# How the platform serves (charts/model-environments `serving`): DEMO_SERVING_MODE=kserve shows
# the InferenceService Argo CD would apply instead of the Deployment.
SERVING_MODE = os.environ.get("DEMO_SERVING_MODE", "deployment")  # deployment | kserve
KSERVE_MODE = os.environ.get("DEMO_KSERVE_DEPLOYMENT_MODE", "Knative")  # Knative | Standard
timings: list[tuple[str, float]] = []


def banner(text: str) -> None:
    print(f"\n\033[1;34m==> {text}\033[0m", flush=True)


def step(
    title: str, command: list[str], cwd: Path, env: dict[str, str], expect_failure: bool = False
) -> str:
    """Run one command with live output; stop the demo on failure (on success, when the step
    shows a refusal)."""
    banner(f"{title}: {' '.join(command)}")
    started = time.monotonic()
    process = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    timings.append((title, time.monotonic() - started))
    print(process.stdout, end="")
    if bool(process.returncode) != expect_failure:
        sys.exit(f"demo: '{title}' exited with {process.returncode}")
    return process.stdout


def demo_env() -> dict[str, str]:
    env = {
        **os.environ,
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv")),
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(DEMO / "bentoml"),
        "IMAGE_REPOSITORY": f"127.0.0.1:{REGISTRY_PORT}/breast-cancer-classifier",
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "Demo"),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "demo@example.invalid"),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "Demo"),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "demo@example.invalid"),
    }
    for leaked in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "GITOPS_REPO", "UV_PROJECT_ENVIRONMENT"):
        env.pop(leaked, None)
    return env


def dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines, as `make report` writes build/deploy.env for the CI environment."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def platform_values() -> dict:
    """What model-environments' ApplicationSets add over each values file (helm.valuesObject)."""
    if SERVING_MODE != "kserve":
        return {"serving": {"mode": "deployment"}}
    return {"serving": {"mode": "kserve"}, "kserve": {"deploymentMode": KSERVE_MODE}}


def render_gitops(gitops: Path) -> None:
    """What Argo CD would apply: the chart rendered with every values file in the GitOps repo."""
    checkout = DEMO / "gitops-checkout"
    shutil.rmtree(checkout, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(gitops), str(checkout)], check=True)
    for values_file in sorted(checkout.glob("envs/*/*/values.yaml")):
        values = yaml.safe_load(values_file.read_text())
        name = f"{values['project']}-{values['environment']}"
        with helm.Chart.load(TEMPLATE / "charts" / "bento-service") as chart:
            # The deploy tool never writes `serving` or `kserve`: a plain merge is what Argo CD does.
            rendered = chart.render({**values, **platform_values()}, name=name, namespace=name)
        objects = [
            f"{doc['kind']}/{doc['metadata']['name']}"
            for path, text in sorted(rendered.items())
            if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
        print(f"  Application {name} <- {values_file.relative_to(checkout)}:")
        print("    " + values_file.read_text().rstrip().replace("\n", "\n    "))
        print("    " + ", ".join(objects))


@dataclass(frozen=True)
class Built:
    """What `make bento` and `make image` made: the Bento and the image that holds it. The Bento
    serves the model it was built with, whatever the store has gained since."""

    bento: str
    image: str  # repository@digest, as the chart gives it to the pod

    @classmethod
    def of(cls, project: Path) -> Built:
        image = json.loads((project / "build/image.json").read_text())
        bento = json.loads((project / "build/bento.json").read_text())["tag"]
        return cls(bento, f"{image['repository']}@{image['digest']}")


@contextmanager
def environment(project: Path, env: dict[str, str], built: Built) -> Iterator[dict[str, str]]:
    """The environment a deploy goes to, stood in for on 127.0.0.1: the image's Bento served
    with the pod's BENTO_IMAGE. Yields the deploy's env, which makes it verify the server there
    (the deploy waits while the server starts, as it would while Argo CD rolls out)."""
    bentoml = str(project / ".venv/bin/bentoml")
    server = subprocess.Popen(
        [bentoml, "serve", built.bento, "--host", "127.0.0.1", "--port", str(ENVIRONMENT_PORT)],
        cwd=project,
        env={**env, "BENTO_IMAGE": built.image},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield {
            **env,
            "DEPLOY_BASE_URL": f"http://127.0.0.1:{ENVIRONMENT_PORT}",
            "DEPLOY_WAIT": "120",
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def verified_url(output: str) -> str:
    """The URL the deploy's rollout check verified (`verified:    <url> serves ...`)."""
    return next(line.split()[1] for line in output.splitlines() if line.startswith("verified:"))


def predict(project: Path) -> str:
    """A prediction from the environment being served, and the metrics it moved."""
    banner("ask the branch's environment for a prediction")
    base = f"http://127.0.0.1:{ENVIRONMENT_PORT}"
    schema = json.loads((project / "data/prepared/schema.json").read_text())
    row = pd.read_parquet(project / "data/prepared/test.parquet").iloc[0]
    record = {
        f["name"]: float(row[f["name"]]) if f["kind"] == "numeric" else row[f["name"]]
        for f in schema["features"]
    }
    request = urllib.request.Request(
        f"{base}/predict",
        data=json.dumps(record).encode(),
        headers={"Content-Type": "application/json"},
    )
    answer = urllib.request.urlopen(request, timeout=10).read().decode()
    print(f"  POST /predict -> {answer}")
    show_prediction_metrics(f"{base}/metrics")
    return answer


def show_prediction_metrics(url: str) -> None:
    """The prediction metrics the request moved (the zero series and training gauges left out)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    moved = [
        line
        for line in text.splitlines()
        if line.startswith(("model_predicted_class", "model_prediction_score", "model_feature_"))
        and "training_fraction" not in line
        and not line.endswith(" 0.0")
        and "_created" not in line
    ]
    print(f"  GET /metrics -> {len(moved)} prediction series moved, among them:")
    outputs = [line for line in moved if not line.startswith("model_feature_")]
    for line in [*outputs[:4], *[line for line in moved if line not in outputs][:4]]:
        print(f"    {line}")


def shifted_sample(project: Path, factor: float) -> Path:
    """The test split with every numeric feature scaled: inputs the model never saw."""
    schema = json.loads((project / "data/prepared/schema.json").read_text())
    target = project / "build" / "shifted-sample.csv"
    rows = pd.read_parquet(project / "data/prepared/test.parquet").to_dict("records")
    with target.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[f["name"] for f in schema["features"]])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    f["name"]: float(row[f["name"]]) * factor
                    if f["kind"] == "numeric"
                    else row[f["name"]]
                    for f in schema["features"]
                }
            )
    return target


def main() -> None:
    env = demo_env()
    # The last demo's registry serves from inside demo/: stop it before starting over.
    registry, registry_dir = str(TEMPLATE / "scripts/registry.sh"), str(DEMO / "registry")
    subprocess.run([registry, "stop", registry_dir], check=False)
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    banner("generate a model repo with cookiecutter (embedded defaults)")
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(DEMO)))
    print(f"  {project}")
    gitops = DEMO / "gitops.git"

    step("setup", ["make", "setup"], project, env)
    step("registry", [registry, "start", registry_dir, str(REGISTRY_PORT)], project, env)
    # The base image, made from Debian packages (once) and pushed to the registry.
    base_image = [str(TEMPLATE / "scripts/base_image.sh"), f"127.0.0.1:{REGISTRY_PORT}"]
    settings = step("base image", base_image, project, env).splitlines()
    base = next(line for line in settings if line.startswith("BASE_IMAGE="))
    image = ["make", "image", base]
    step("train on main", ["make", "train"], project, env)
    subprocess.run(["git", "add", "--all"], cwd=project, check=True, env=env)
    subprocess.run(
        ["git", "commit", "--quiet", "-m", "Train the first model"],
        cwd=project,
        check=True,
        env=env,
    )
    step("bento on main", ["make", "bento"], project, env)
    step("image on main", image, project, env)
    first = Built.of(project)
    verified: list[tuple[str, str]] = []
    with environment(project, env, first) as checked:
        out = step("deploy the first model to production", ["make", "deploy"], project, checked)
    verified.append(("production, first model", verified_url(out)))

    banner(f"branch {BRANCH} and change a hyperparameter")
    subprocess.run(["git", "switch", "--quiet", "-c", BRANCH], cwd=project, check=True, env=env)
    params = (project / "params.yaml").read_text().replace("C: 1.0", "C: 0.5")
    (project / "params.yaml").write_text(params)
    step("train", ["make", "train"], project, env)
    subprocess.run(
        ["git", "commit", "--quiet", "-am", "Stronger regularisation"],
        cwd=project,
        check=True,
        env=env,
    )
    step("reproduce", ["make", "reproduce"], project, env)
    step("bento", ["make", "bento"], project, env)
    step("image", image, project, env)
    with environment(project, env, Built.of(project)) as checked:
        out = step("deploy the branch", ["make", "deploy"], project, checked)
        verified.append(("branch environment", verified_url(out)))
        predict(project)
    step("merge request report", ["make", "report"], project, env)
    banner("the merge request note (build/report.md)")
    print((project / "build/report.md").read_text())
    # A terminal shows no pictures: say where the note's files are (a forge shows them inline).
    for path in sorted((project / "build/report").glob("*.png")) + [
        project / "build/model_card.md"
    ]:
        print(f"  {path.relative_to(DEMO)}")
    branch_deploy = dotenv(project / "build/deploy.env")
    banner(f"what Argo CD would apply (serving mode: {SERVING_MODE})")
    render_gitops(gitops)
    sample = shifted_sample(project, 1.5)
    drift = ["make", "drift", f"INPUT={sample.relative_to(project)}", "ENV=production"]
    step(
        "drift report on a shifted sample (exit 1: drift)", drift, project, env, expect_failure=True
    )
    print(f"  report: {(project / 'build/drift.html').relative_to(DEMO)}, summary build/drift.json")
    score = ["make", "score", "INPUT=data/prepared/test.parquet", "OUTPUT=build/scores.csv"]
    step("batch score with production's model", [*score, "ENV=production"], project, env)
    print("  " + "\n  ".join((project / "build/scores.csv").read_text().splitlines()[:3]))

    banner(f"merge {BRANCH} into main")
    subprocess.run(["git", "switch", "--quiet", "main"], cwd=project, check=True, env=env)
    subprocess.run(
        ["git", "merge", "--quiet", "--no-ff", "-m", f"Merge {BRANCH}", BRANCH],
        cwd=project,
        check=True,
        env=env,
    )
    step("train on main", ["make", "train"], project, env)
    step("bento on main", ["make", "bento"], project, env)
    step("image on main", image, project, env)
    # The gate scores the production model (the first one) on this model's test split.
    with environment(project, env, Built.of(project)) as checked:
        gated = ["make", "deploy", "report"]
        out = step("deploy production (quality gate)", gated, project, checked)
    verified.append(("production, merged model", verified_url(out)))
    production = dotenv(project / "build/deploy.env")
    step("tear the branch down", ["make", "teardown"], project, {**env, "DEPLOY_BRANCH": BRANCH})
    banner("what Argo CD would apply now")
    render_gitops(gitops)
    reason = {"ROLLBACK_REASON": "demo: the new model's p99 doubled in production"}
    # Done once production serves the first model's image again.
    with environment(project, {**env, **reason}, first) as checked:
        out = step("roll production back", ["make", "rollback"], project, checked)
    verified.append(("production, rolled back", verified_url(out)))
    banner("GitOps history")
    log = ["git", "log", "--format=  %h %s"]
    print(subprocess.run(log, cwd=gitops, capture_output=True, text=True, check=True).stdout)

    banner("summary")
    lineage = json.loads((project / "build/lineage.json").read_text())
    print(f"  project      {project}")
    print(f"  MLflow run   {lineage['run_url']}")
    print(f"  model        {lineage['model_name']} v{lineage['model_version']}")
    image = json.loads((project / "build/image.json").read_text())
    print(f"  image        {image['repository']}@{image['digest']}")
    print(f"  GitOps repo  {gitops}")
    print(
        f"  branch env   {branch_deploy['ENVIRONMENT']} ({branch_deploy['PREVIEW_URL']}), torn down"
    )
    print(f"  production   {production['PREVIEW_URL']}, rolled back to the first model")
    for where, url in verified:
        print(f"  verified     {url} ({where}, served on 127.0.0.1:{ENVIRONMENT_PORT})")
    for title, seconds in timings:
        print(f"  {seconds:7.1f} s  {title}")
    print(f"  {sum(s for _, s in timings):7.1f} s  total")


if __name__ == "__main__":
    main()
