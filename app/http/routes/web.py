"""GET /: the page people use in a browser (app/web/), served by the service itself.

Plain files, no build step and nothing from a CDN: the page works offline and on a network
that reaches only this service. It talks to the jobs API, so long files survive proxies.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# The page loads only its own files; the player plays the local file through a blob: URL.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    return HTMLResponse(_page(), headers=_HEADERS)


@cache
def _page() -> str:
    """index.html with the languages Whisper knows in its datalist."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from whisperx.utils import LANGUAGES  # a plain dict of code → English name

    options = "".join(
        f'<option value="{code}">{html.escape(LANGUAGES.get(code, code).title())}</option>'
        for code in sorted(_LANGUAGE_CODES, key=lambda c: LANGUAGES.get(c, c))
    )
    text = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    return text.replace('<datalist id="languages"></datalist>', f'<datalist id="languages">{options}</datalist>')
