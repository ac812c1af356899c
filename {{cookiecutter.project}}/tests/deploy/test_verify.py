"""deploy/gitops/verify.py: what the rollout check expects and when it runs (the waiting itself
is tested by the template against the real image and an Argo CD stand-in)."""

from __future__ import annotations

import pytest

from {{ cookiecutter.__package }}.errors import ProjectError

from deploy.gitops import verify

DIGEST = "sha256:" + "ab" * 32


def test_the_expected_image_is_the_one_the_chart_renders() -> None:
    # The chart's bento-service.image: the digest wins over the tag.
    assert verify.image_reference({"repository": "r/m", "tag": "t1", "digest": DIGEST}) == (
        f"r/m@{DIGEST}"
    )
    assert verify.image_reference({"repository": "r/m", "tag": "t1"}) == "r/m:t1"


@pytest.mark.parametrize(
    ("ingress", "url"),
    [
        ({"enabled": True, "host": "m-x.example"}, "http://m-x.example/"),
        ({"enabled": True, "host": "m-x.example", "tlsSecretName": "tls"}, "https://m-x.example/"),
        ({"enabled": False, "host": "m-x.example"}, None),
    ],
)
def test_environment_url_follows_the_ingress(ingress: dict, url: str | None) -> None:
    assert verify.environment_url({"ingress": ingress}) == url


@pytest.mark.parametrize(
    ("wait", "repo", "expected"),
    [
        (None, "https://git.example/gitops.git", (300, None)),
        (None, "/srv/gitops.git", (0, "the GitOps repo is a local path")),
        ("0", "https://git.example/gitops.git", (0, "DEPLOY_WAIT=0")),
        ("20", "/srv/gitops.git", (20, None)),
    ],
)
def test_wait_seconds(monkeypatch: pytest.MonkeyPatch, wait, repo, expected) -> None:
    if wait is None:
        monkeypatch.delenv("DEPLOY_WAIT", raising=False)
    else:
        monkeypatch.setenv("DEPLOY_WAIT", wait)
    seconds, skipped = verify.wait_seconds(repo)
    assert seconds == expected[0]
    assert (skipped or "").startswith(expected[1] or "")
    assert bool(skipped) == bool(expected[1])


def test_a_bad_wait_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_WAIT", "5m")
    with pytest.raises(ProjectError, match=r"DEPLOY_WAIT='5m': not a whole number of seconds"):
        verify.wait_seconds("/srv/gitops.git")
