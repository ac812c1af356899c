"""Locations as the toolkit prints and records them: never with credentials."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The `user:password@` part of any URL inside a text (a tool's error message, say).
USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@'\"]+@", re.IGNORECASE)


def redact(location: str) -> str:
    """The URL without any user:password@ part (any other location as it is)."""
    parts = urlsplit(location)
    if parts.username is None and parts.password is None:
        return location
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def scrub(text: str, *secrets: str | None) -> str:
    """`text` without the credentials of any URL in it, and without the given secrets."""
    text = USERINFO.sub(r"\g<scheme>", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_remote(location: str) -> bool:
    """True for URLs and scp-like `host:path`; False for local paths."""
    if "://" in location:
        return not location.startswith("file://")
    head = location.split("/", 1)[0]
    return ":" in head and not Path(location).exists()
