"""Looking at a page as a person would: Markdown rendered to HTML (markdown-it-py), opened in
headless Chromium from Debian, with a fresh profile and no network chatter."""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

from helpers.project import require_tool

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
# Roughly how a forge shows a note: a narrow column, tables with borders, images within it.
STYLE = """
body { font-family: 'DejaVu Sans', sans-serif; font-size: 14px; max-width: 920px;
       margin: 16px auto; padding: 0 16px; color: #1f2328; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d1d9e0; padding: 4px 10px; }
code { background: #eff1f3; padding: 1px 4px; border-radius: 4px; }
img { max-width: 100%; }
"""
# After every image has loaded or failed, the page records what each one got.
PROBE = """
<pre id="probe" hidden></pre>
<script>
window.addEventListener("load", () => {
  document.getElementById("probe").textContent = JSON.stringify(
    [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth,
                                      height: i.naturalHeight})));
});
</script>
"""


def markdown_page(markdown: str, title: str) -> str:
    """The note as a standalone HTML page (CommonMark plus GitHub's tables)."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}{PROBE}</body></html>"
    )


def chromium(page: Path, *args: str) -> str:
    """Run headless Chromium on a local page with a fresh profile; its standard output."""
    return run_chromium(page, *args).stdout


def dom_and_console(page: Path) -> tuple[str, list[str]]:
    """The page's DOM once loaded, and every message it wrote to the console (errors included)."""
    result = run_chromium(
        page, "--enable-logging=stderr", "--virtual-time-budget=5000", "--dump-dom"
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def run_chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    binary = require_tool("chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def loaded_images(page: Path) -> list[dict]:
    """Every image of the page with the size it loaded at (0 x 0 when it did not load)."""
    dom = chromium(page, "--virtual-time-budget=10000", "--dump-dom")
    probe = re.search(r'<pre id="probe" hidden="">(.*?)</pre>', dom, re.DOTALL)
    assert probe and probe.group(1), f"the page's probe did not run:\n{dom[-2000:]}"
    return json.loads(html.unescape(probe.group(1)))


def screenshot(page: Path, output: Path, width: int, height: int) -> tuple[int, int]:
    """A PNG of the page at width x height; returns the PNG's own size."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    chromium(
        page,
        f"--window-size={width},{height}",
        "--virtual-time-budget=10000",
        f"--screenshot={output}",
    )
    header = output.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{output} is not a PNG"
    return struct.unpack(">II", header[16:24])
