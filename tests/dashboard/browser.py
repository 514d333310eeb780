"""Headless Chromium through Playwright (the Python package: the suite is pytest, and its wheel
carries its own driver, so nothing else is installed). Debian's /usr/bin/chromium runs: Playwright
never downloads a browser here. Without Chromium the dashboard tests skip (`.ci/run` installs
it)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from execution_service.decimals import to_str

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where the run leaves its pictures of the dashboard (git-ignored; the README names it).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: `apt-get install -y chromium` (.ci/run does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        await chromium.close()


@dataclass
class Watched:
    """A page, with what it said on the console and every URL it asked for."""

    page: Page
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = await context.new_page()
    watched = Watched(page)
    # CSP refusals and script errors both arrive here; the page must have none.
    page.on("console", lambda m: m.type in ("error", "warning") and watched.errors.append(m.text))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("request", lambda r: watched.urls.append(r.url))
    yield watched
    await context.close()


def cut(value: str | None, places: int) -> str:
    """What the page shows of a decimal string: cut, not rounded (as its `dec.cut`)."""
    if value is None:
        return "—"
    whole, _, fraction = value.partition(".")
    kept = fraction[:places].rstrip("0")
    text = f"{whole}.{kept}" if kept else whole
    return "0" if text == "-0" else text


def percent_of(numerator: Decimal, denominator: Decimal) -> str:
    """numerator / denominator * 100, cut to 2 places (the page's distance to a stop)."""
    text = to_str((numerator / denominator * 100).quantize(Decimal("0.01"), rounding=ROUND_DOWN))
    return "0" if text == "-0" else text  # the page never shows a negative zero


async def table(page: Page, selector: str) -> dict[int, dict[str, Any]]:
    """A table's data rows by their row id: each cell's shown text and exact value by field."""
    rows: list[dict[str, Any]] = await page.eval_on_selector_all(
        f"{selector} tbody tr.data",
        """rows => rows.map(tr => ({
            id: Number(tr.dataset.positionId || tr.dataset.logId || tr.dataset.connectionId),
            cells: Object.fromEntries([...tr.cells].filter(td => td.dataset.field).map(td => [
                td.dataset.field,
                {text: td.firstChild ? td.firstChild.textContent : "", value: td.dataset.value ?? null},
            ])),
        }))""",
    )
    return {r["id"]: r["cells"] for r in rows}


async def hover_tooltip(page: Page, chart: str, fraction: float) -> str:
    """Point at `fraction` of the chart's plot width (half its height) and read the tooltip."""
    over = page.locator(f"{chart} .u-over")
    box = await over.bounding_box()
    assert box is not None, f"{chart} has no plot"
    x = box["x"] + max(1.0, min(box["width"] - 1, box["width"] * fraction))
    await page.mouse.move(x, box["y"] + box["height"] / 2)
    tip = page.locator(f"{chart} .tooltip")
    await tip.wait_for(state="visible")
    return " ".join((await tip.inner_text()).split())
