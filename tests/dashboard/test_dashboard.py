"""The dashboard in a real browser: headless Chromium loads /dashboard with the key in the URL
fragment, and the rendered DOM and a screenshot must show the user's rows and equity curve."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.dashboard.png import colour_counts, read_pixels
from tests.factories import Actor, paper_setup

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `apt-get install -y chromium` (.ci/run installs it)",
)
FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
CHART = (0xFF, 0x6A, 0x00)  # the equity line's stroke
ROW = (0xEA, 0xF1, 0xFB)  # the background of a table row that holds data


async def _chromium(profile: Path, *args: str) -> bytes:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--hide-scrollbars",
        # Virtual time runs the page's timers (several refreshes) and waits for its fetches.
        "--virtual-time-budget=6000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


def _near(colour: tuple[int, int, int], target: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, target, strict=True))


async def test_the_dashboard_renders_the_users_data(
    base_url: str, user: Actor, other_user: Actor, tmp_path: Path
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    for exit_price in ("110", "105"):
        position_id = (await acct.signal())["executions"][0]["position_id"]
        await acct.price(exit_price)
        await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    still_open = (await acct.signal())["executions"][0]["position_id"]
    await acct.price("108")
    theirs = await paper_setup(other_user, price="100", **FQ1)
    their_position = (await theirs.signal())["executions"][0]["position_id"]
    logs = (await user.ok("GET", "/api/v1/logs"))["items"]
    key = user.headers["Authorization"].removeprefix("Bearer ")

    async with httpx.AsyncClient(base_url=base_url) as http:
        page = await http.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "http" not in csp and "unsafe" not in csp  # nothing from elsewhere, no eval
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no external resource

    url = f"{base_url}/dashboard#key={key}"
    dom = (await _chromium(tmp_path / "dom", "--dump-dom", url)).decode()
    assert 'data-state="ready"' in dom, dom[-3000:]
    assert key not in dom  # the key is not written into the page
    assert f'data-connection-id="{acct.conn_id}" data-status="active"' in dom
    assert f'<tr class="data" data-position-id="{still_open}">' in dom
    assert f'data-position-id="{their_position}"' not in dom  # another owner's position
    for entry in logs:
        assert f'data-log-id="{entry["id"]}"' in dom
    line = re.search(r'<polyline class="equity-line"[^>]*>', dom)
    assert line is not None, "no equity curve"
    assert f'data-connection-id="{acct.conn_id}"' in line.group(0)
    assert 'data-points="3"' in line.group(0)  # the start and two closed trades

    shot = tmp_path / "dashboard.png"
    await _chromium(tmp_path / "shot", f"--screenshot={shot}", url)
    width, height, rows = read_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    counts = colour_counts(rows)
    chart = sum(n for colour, n in counts.items() if _near(colour, CHART))
    table_rows = counts[ROW]
    text = sum(n for colour, n in counts.items() if max(colour) < 110)
    assert chart > 300, f"the equity line is not drawn ({chart} pixels)"
    assert table_rows > 5000, f"the tables hold no data rows ({table_rows} pixels)"
    assert text > 2000, f"hardly any text on the page ({text} pixels)"
