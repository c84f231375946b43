"""The web page shows what a client sent (speaker names, file names, transcripts) as text, never as
markup: its scripts never parse a string as HTML or code."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "app" / "web"
_MARKUP_SINKS = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(")


def test_the_pages_scripts_write_text_only():
    scripts = sorted(WEB.glob("*.js"))
    assert scripts
    found = {str(p.name): m for p in scripts if (m := _MARKUP_SINKS.findall(p.read_text()))}
    assert not found, f"markup sinks in the page's scripts: {found}"
    assert any("textContent" in p.read_text() for p in scripts)
