"""After the GitOps commit: wait until the environment serves what was deployed.

The commit only asks Argo CD for a change; a green deploy job must mean the environment's URL
answers and its /metadata reports the deployed model version and image (the chart passes the
image reference to the pod as BENTO_IMAGE). With ARGOCD_SERVER and ARGOCD_TOKEN set, the
Application must also be Synced and Healthy at the deploy's commit or a later one, read from
Argo CD's REST API (right after a push it is still Synced and Healthy at the commit before).

    DEPLOY_WAIT       seconds to wait (default 300; 0 turns the check off; with a local
                      GitOps repo, which no Argo CD reads, off unless set)
    DEPLOY_BASE_URL   where to send the requests instead of the environment's URL, e.g.
                      http://127.0.0.1:8080 for a port-forward; the Host header stays the
                      environment's host, so an ingress controller still routes them
    ARGOCD_SERVER     https://argocd.example.com (optional), with ARGOCD_TOKEN (a Bearer token)
    ARGOCD_APP_NAMESPACE  the Applications' namespace when it is not Argo CD's own
                      (Argo CD's "applications in any namespace")
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from {{ cookiecutter.__package }}.errors import ProjectError

from ..urls import is_remote, redact, scrub
from .repo import includes

DEFAULT_WAIT = 300
POLL_SECONDS = 2.0
REQUEST_TIMEOUT = 5.0


@dataclass(frozen=True)
class Expected:
    """What the environment must report once Argo CD has applied the commit."""

    url: str | None  # as people open it, http(s)://<project>-<env>.<domain>/; None: no ingress
    application: str  # the Argo CD Application, <project>-<env>
    model_version: str | None
    image: str  # the reference the chart renders: repository@digest, else repository:tag
    revision: str | None = None  # the GitOps commit holding the values, once pushed


@dataclass(frozen=True)
class Check:
    """The check's settings, read before the commit so that a bad one writes nothing."""

    seconds: int
    base_url: str
    argocd: tuple[str, str] | None  # (server, token)
    app_namespace: str
    gitops_repo: str
    skipped: str | None  # why nothing is checked


def image_reference(image: dict[str, str]) -> str:
    """The reference the chart gives the pod: the digest wins over the tag (bento-service.image)."""
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image['tag']}"


def environment_url(values: dict[str, Any]) -> str | None:
    ingress = values.get("ingress") or {}
    if not ingress.get("enabled") or not ingress.get("host"):
        return None
    return f"{'https' if ingress.get('tlsSecretName') else 'http'}://{ingress['host']}/"


def expected_of(values: dict[str, Any]) -> Expected:
    return Expected(
        url=environment_url(values),
        application=f"{values['project']}-{values['environment']}",
        model_version=values.get("lineage", {}).get("modelVersion"),
        image=image_reference(values["image"]),
    )


def wait_seconds(gitops_repo: str) -> tuple[int, str | None]:
    """DEPLOY_WAIT, else the default; a local GitOps repo has no Argo CD reading it, so there
    the check is on only when DEPLOY_WAIT asks for it."""
    text = os.environ.get("DEPLOY_WAIT", "").strip()
    if not text:
        if not is_remote(gitops_repo):
            return 0, "the GitOps repo is a local path no Argo CD reads (set DEPLOY_WAIT to check)"
        text = str(DEFAULT_WAIT)
    if not text.isdigit():
        raise ProjectError(
            f"DEPLOY_WAIT={text!r}: not a whole number of seconds (0 turns the check off)"
        )
    return int(text), None if int(text) else "DEPLOY_WAIT=0"


def argocd() -> tuple[str, str] | None:
    server = os.environ.get("ARGOCD_SERVER", "").strip().rstrip("/")
    token = os.environ.get("ARGOCD_TOKEN", "").strip()
    if bool(server) != bool(token):
        missing = "ARGOCD_TOKEN" if server else "ARGOCD_SERVER"
        raise ProjectError(
            f"{missing} is not set: the Argo CD check needs both ARGOCD_SERVER and ARGOCD_TOKEN"
        )
    if server and "://" not in server:
        server = f"https://{server}"  # as the argocd CLI takes it: a bare host means HTTPS
    if server and not server.startswith(("http://", "https://")):
        raise ProjectError(f"ARGOCD_SERVER={redact(server)!r}: not an http(s):// URL")
    return (server, token) if server else None


def plan(gitops_repo: str, expected: Expected) -> Check:
    seconds, skipped = wait_seconds(gitops_repo)
    base_url = os.environ.get("DEPLOY_BASE_URL", "").strip().rstrip("/")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ProjectError(f"DEPLOY_BASE_URL={base_url!r}: not an http(s):// URL")
    if not skipped and expected.url is None and not base_url:
        raise ProjectError(
            "the environment has no ingress, so no URL to check: set DEPLOY_BASE_URL "
            "(a port-forward, say) or DEPLOY_WAIT=0"
        )
    app_namespace = os.environ.get("ARGOCD_APP_NAMESPACE", "").strip()
    return Check(seconds, base_url, argocd(), app_namespace, gitops_repo, skipped)


def call(url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
    """One GET (or POST with `body`): (status, body); (0, the reason) when nothing answered."""
    method = "GET" if body is None else "POST"
    # http(s) only: plan() and argocd() checked the settings the URLs come from.
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError) as error:
        return 0, str(getattr(error, "reason", error)).encode()


def metadata_request(check: Check, expected: Expected) -> tuple[str, dict[str, str]]:
    """The /metadata URL to call and its headers: DEPLOY_BASE_URL stands in for the host."""
    if not check.base_url:
        return f"{expected.url}metadata", {}
    host = urllib.parse.urlsplit(expected.url).netloc if expected.url else None
    return f"{check.base_url}/metadata", {"Host": host} if host else {}


def served_problem(check: Check, expected: Expected) -> str | None:
    """What is wrong with the environment's answer, or None when it serves the deploy."""
    url, headers = metadata_request(check, expected)
    # BentoML APIs are POST endpoints, even those without input.
    status, body = call(url, headers | {"Content-Type": "application/json"}, b"{}")
    if status == 0:
        return f"{url}: no answer ({body.decode(errors='replace')})"
    if status != 200:
        return f"{url}: HTTP {status}"
    try:
        served = json.loads(body)
    except json.JSONDecodeError:
        return f"{url}: not JSON"
    if not isinstance(served, dict):
        return f"{url}: not a /metadata answer"
    version = served.get("model_version")
    if expected.model_version and str(version) != expected.model_version:
        return f"{url} serves model version {version!r}, deployed {expected.model_version!r}"
    if served.get("image") != expected.image:
        image = served.get("image") or "unknown"
        return f"{url} serves image {image!r}, deployed {expected.image!r}"
    return None


def short(revision: str | None) -> str:
    return (revision or "none")[:12]


def application_problem(check: Check, expected: Expected) -> str | None:
    """Argo CD's view: None once the Application is Synced and Healthy at the deploy's commit
    or a later one (another environment's deploy may have come after)."""
    server, token = check.argocd or ("", "")
    name = urllib.parse.quote(expected.application)
    namespace = urllib.parse.quote(check.app_namespace)
    url = f"{server}/api/v1/applications/{name}" + (
        f"?appNamespace={namespace}" if namespace else ""
    )
    status, body = call(url, {"Authorization": f"Bearer {token}"})
    where = f"Argo CD {redact(server)} application {expected.application}"
    if status != 200:
        detail = body.decode(errors="replace")[:200] if status == 0 else f"HTTP {status}"
        return f"{where}: {scrub(detail, token)}"
    try:
        state = json.loads(body).get("status") or {}
    except (json.JSONDecodeError, AttributeError):
        return f"{where}: not an Application"
    sync = (state.get("sync") or {}).get("status") or "Unknown"
    health = state.get("health") or {}
    synced_at = (state.get("sync") or {}).get("revision")
    if expected.revision and not (
        synced_at and includes(check.gitops_repo, synced_at, expected.revision)
    ):
        return (
            f"{where} is at revision {short(synced_at)}, "
            f"not yet at the deploy's {short(expected.revision)}"
        )
    if (sync, health.get("status")) == ("Synced", "Healthy"):
        return None
    message = health.get("message")
    return f"{where} is {sync} and {health.get('status') or 'Unknown'}" + (
        f" ({message})" if message else ""
    )


def wait(check: Check, expected: Expected, revision: str | None) -> None:
    """Return once the environment serves the deploy pushed as `revision`, printing the URL
    verified; raise with the last thing seen when it does not within the wait."""
    if check.skipped:
        print(f"verify:      not checked: {check.skipped}")
        return
    expected = replace(expected, revision=revision)
    deadline = time.monotonic() + check.seconds
    while True:
        problem = application_problem(check, expected) if check.argocd else None
        problem = problem or served_problem(check, expected)
        if problem is None:
            url = expected.url or check.base_url
            print(f"verified:    {url} serves model version {expected.model_version or '-'}")
            return
        if time.monotonic() >= deadline:
            # One line, whatever the server put in its message.
            raise ProjectError(f"not verified after {check.seconds} s: {' '.join(problem.split())}")
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
