"""GET /dashboard: the page is public (it holds no data); the API key is typed into it and every
figure comes from the API, under that key's owner scope.

The page is assembled once from the package's files: `page/index.html`, whose
`<script data-include="…">` and `<style data-include="…">` placeholders take the page's own
scripts and styles (`page/`) and the vendored chart library (`vendor/uplot/`), inline. The
Content-Security-Policy then allows exactly those inline blocks (by hash) and requests to this
origin: nothing else can load or run, and the key cannot be sent elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse

router = APIRouter(include_in_schema=False)

_INCLUDE = re.compile(r'<(script|style) data-include="([\w./-]+)"></\1>')
LICENSES = ("vendor/uplot/LICENSE",)
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _include(match: re.Match[str]) -> str:
    tag, name = match.groups()
    text = _read(name)
    if f"</{tag}" in text.lower():  # would end the block early
        raise RuntimeError(f"{name} cannot be inlined: it contains </{tag}")
    return f"<{tag}>{text}</{tag}>"


def _hashes(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
    return " ".join(f"'sha256-{d}'" for d in digests)


@lru_cache(maxsize=1)
def page() -> tuple[str, str]:
    """(html, Content-Security-Policy)."""
    html = _INCLUDE.sub(_include, _read("page/index.html"))
    csp = (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; "
        f"style-src {_hashes(html, 'style')}; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return html, csp


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    html, csp = page()
    return HTMLResponse(html, headers={"Content-Security-Policy": csp, **_HEADERS})


@router.get("/dashboard/licenses", response_class=PlainTextResponse)
async def licenses() -> PlainTextResponse:
    """The licences of the vendored code the page carries (the MIT licence asks for its text to
    travel with the copies)."""
    text = "\n\n".join(f"== {name} ==\n\n{_read(name)}" for name in LICENSES)
    return PlainTextResponse(text, headers=_HEADERS)
