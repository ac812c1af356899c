"""KServe's probes against the real image: the InferenceService the bento-service chart renders
in kserve mode (both KServe deployment modes) is asked for its container's probe paths and port,
and the image of a trained project, run as Kubernetes would run it (its entrypoint and the
rendered env, non-root, read-only root, only /tmp writable), must answer every one of them,
and the metrics path its scrape annotations name.

What a cluster adds and this cannot show: Knative's queue-proxy runs the readiness probe itself
(against the same path and port), and the kubelet the startup and liveness probes.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from helpers.charts import in_mode, one, render_bento, validate_strictly
from helpers.images import free_port, serve_read_only, skopeo_inspect, wait_ready

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def rendered_container(
    record: dict[str, Any], project: str, port: int, mode: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The predictor container of the InferenceService for the built image, validated."""
    values = {
        "project": project,
        "environment": "probe-check",
        "image": {"repository": record["repository"], "digest": record["digest"]},
        # The test runs the image with only /tmp writable, where the pod has emptyDirs.
        "bento": {"port": port, "homeDir": "/tmp/bentoml"},
    }
    isvc = one(render_bento(in_mode(values, mode)), "InferenceService")
    validate_strictly(isvc)
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["image"] == record["reference"]
    return isvc, container


def probe_targets(container: dict) -> dict[str, tuple[str, int]]:
    """Probe -> (path, port number), the named port resolved as the kubelet resolves it."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    targets = {}
    for probe in PROBES:
        action = container[probe]["httpGet"]
        port = action["port"]
        targets[probe] = (action["path"], ports[port] if isinstance(port, str) else port)
    return targets


def get(url: str, timeout: float) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_answers_the_inference_services_probes(built_image, image_rootfs, tmp_path):
    project, _, record, _ = built_image
    port = free_port()
    rendered = {
        mode: rendered_container(record, project.name, port, mode)
        for mode in ("kserve-knative", "kserve-standard")
    }
    (targets,) = {tuple(sorted(probe_targets(c).items())) for _, c in rendered.values()}
    targets = dict(targets)
    isvc, container = rendered["kserve-knative"]
    # The probes aim at the port the Bento is told to serve on, and it is the container's port.
    assert {p for _, p in targets.values()} == {port}
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["BENTOML_PORT"] == str(port)
    annotations = isvc["spec"]["predictor"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)

    config = skopeo_inspect(record["reference"], "--config")["config"]
    log = tmp_path / "serve.log"
    # The rendered env as the pod gets it; the host only because no network namespace is made.
    with serve_read_only(image_rootfs, config, {**env, "BENTOML_HOST": "127.0.0.1"}, log) as proc:
        startup = container["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        path, _ = targets["startupProbe"]
        started = wait_ready(
            f"http://127.0.0.1:{port}{path}", timeout=budget, log=log, process=proc
        )
        assert started < budget
        for probe in PROBES:
            path, probe_port = targets[probe]
            # Several rounds, each within the probe's own timeout (startup: Kubernetes' 1 s).
            for _ in range(3):
                timeout = container[probe].get("timeoutSeconds", 1)
                assert get(f"http://127.0.0.1:{probe_port}{path}", timeout) == 200, (probe, path)
                time.sleep(0.2)
        metrics = f"http://127.0.0.1:{annotations['prometheus.io/port']}"
        assert get(metrics + annotations["prometheus.io/path"], timeout=10) == 200
