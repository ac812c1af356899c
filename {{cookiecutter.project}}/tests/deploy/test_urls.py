"""deploy/urls.py: locations and messages are printed without credentials."""

from __future__ import annotations

from deploy.urls import redact, scrub


def test_redact_drops_user_and_password() -> None:
    assert redact("https://u:p@host:8443/x.git") == "https://host:8443/x.git"
    assert redact("../gitops.git") == "../gitops.git"


def test_scrub_drops_credentials_of_every_url_and_the_given_secrets() -> None:
    text = "fatal: https://u:tok@a.example/x and s3://key:secret@b/c failed; token tok2"
    assert scrub(text, "tok2", None) == (
        "fatal: https://a.example/x and s3://b/c failed; token ***"
    )
