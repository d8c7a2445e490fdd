"""The chart page (ttfast.edge static files) in a real browser: headless Chromium over the
DevTools protocol opens it, the test reads what the chart's series hold
(``window.ttfastChart.debug()``) and samples the screenshot's pixels for the candle, HMA and
MACD-histogram colours.

``TTFAST_CHART_SCREENSHOT=path`` keeps a copy of the screenshot (docs/chart.png is made so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest
from tests.browser._canned import CannedEdge
from tests.browser._cdp import Page, chromium
from tests.browser._png import decode_png
from tests.servers import free_port

from ttfast._core import HIST_COLORS, HMA_DOWN_COLOR, HMA_UP_COLOR
from ttfast.edge import assets

ROOT = Path(__file__).resolve().parents[2]
CANDLE_UP = "#26a69a"
CANDLE_DOWN = "#ef5350"
DEBUG = "window.ttfastChart ? window.ttfastChart.debug() : null"
TIMEOUT = 60.0  # for each condition waited on (a shared 2-core machine can be slow)

pytestmark = pytest.mark.timeout(300)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _pixels(
    img: npt.NDArray[np.uint8], area: dict[str, float], exclude: list[dict[str, float]]
) -> npt.NDArray[np.uint8]:
    """The pixels of `area` (a CSS-pixel rect, device scale 1) with the `exclude` rects (the
    legends, whose text has the same colours) blanked out, as an (n, 3) array."""
    x0, y0 = round(area["x"]), round(area["y"])
    x1, y1 = round(area["x"] + area["width"]), round(area["y"] + area["height"])
    keep = np.zeros(img.shape[:2], dtype=bool)
    keep[y0:y1, x0:x1] = True
    for r in exclude:
        ex0, ey0 = int(r["x"]) - 2, int(r["y"]) - 2
        ex1, ey1 = int(r["x"] + r["width"]) + 3, int(r["y"] + r["height"]) + 3
        keep[max(ey0, 0) : ey1, max(ex0, 0) : ex1] = False
    return img[keep]


def _count(px: npt.NDArray[np.uint8], hex_color: str, tol: int = 6) -> int:
    diff = np.abs(px.astype(np.int16) - np.array(_rgb(hex_color), dtype=np.int16))
    return int(np.count_nonzero((diff <= tol).all(axis=1)))


def check_series(d: dict[str, Any]) -> None:
    """What the chart's series hold: candles both ways, both HMA colours, the four MACD
    histogram colours, MACD and signal lines."""
    assert d["candles"] >= 100 and d["candlesUp"] > 0 and d["candlesDown"] > 0, d
    hma = {c.lower() for c in d["hmaColors"]}
    assert {HMA_UP_COLOR.lower(), HMA_DOWN_COLOR.lower()} <= hma, d["hmaColors"]
    assert set(d["histColors"]) == {c.lower() for c in HIST_COLORS}, d["histColors"]
    assert d["macdPoints"] > 0 and d["signalPoints"] > 0 and d["histPoints"] > 0, d
    assert d["hmaPoints"] > 0, d


def check_pixels(png: bytes, d: dict[str, Any]) -> dict[str, int]:
    """The screenshot shows them: each colour covers pixels of its pane's drawing area (price
    pane: candles and HMA; MACD pane: the histogram), legends and axes left out."""
    img = decode_png(png)
    rects = d["rects"]
    price = _pixels(img, rects["pricePlot"], rects["legends"])
    macd = _pixels(img, rects["macdPlot"], rects["legends"])
    counts = {
        "candle up": _count(price, CANDLE_UP),
        "candle down": _count(price, CANDLE_DOWN),
        "hma up": _count(price, HMA_UP_COLOR),
        "hma down": _count(price, HMA_DOWN_COLOR),
        **{f"hist {c}": _count(macd, c) for c in HIST_COLORS},
    }
    thin = {k: n for k, n in counts.items() if n < 20}
    assert not thin, f"colours (almost) missing from the screenshot: {thin}; all: {counts}"
    return counts


def _save_screenshot(png: bytes) -> None:
    target = os.environ.get("TTFAST_CHART_SCREENSHOT")
    if target:
        with open(target, "wb") as f:
            f.write(png)


async def _select(page: Page, symbol: str) -> None:
    await page.evaluate(
        "(() => { const s = document.getElementById('symbol'); "
        f"s.value = {symbol!r}; s.dispatchEvent(new Event('change')); }})()"
    )


def _forming_bar_moved() -> Callable[[dict[str, Any]], bool]:
    """A predicate over successive debug() values: true once the newest bar has been seen at
    two different closes (whatever the timing of polls against bar closes)."""
    seen: dict[int, set[float]] = {}

    def moved(x: dict[str, Any]) -> bool:
        c = x["lastCandle"]
        closes = seen.setdefault(c["time"], set())
        closes.add(c["close"])
        return len(closes) >= 2

    return moved


def test_assets_are_the_page_and_nothing_else() -> None:
    names = assets.static_names()
    for name in ("index.html", "chart.js", "style.css"):
        assert name in names
    lwc = assets.static_file("lightweight-charts.standalone.production.js")
    assert lwc is not None and lwc[1].startswith("text/javascript")
    assert b"Licensed under Apache License 2.0" in lwc[0][:400]
    assert assets.static_file("LIGHTWEIGHT-CHARTS-LICENSE.txt") is not None
    assert assets.static_file("LIGHTWEIGHT-CHARTS-NOTICE.txt") is not None
    html = assets.index_html()
    assert b"static/chart.js" in html and b"static/lightweight-charts" in html
    assert b"http" not in html.replace(b"https://www.tradingview.com/", b"")  # no CDN
    for bad in ("../assets.py", "README.md", "", ".", "..", "/etc/passwd", "static/chart.js"):
        assert assets.static_file(bad) is None, bad


def test_wheel_carries_the_page() -> None:
    """.gitignore has *.html and scikit-build-core applies it to the wheel's package files too:
    sdist.include brings the static folder back (else index.html would be missing)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "src/ttfast/edge/static/**" in conf["tool"]["scikit-build"]["sdist"]["include"]


async def test_chart_page_live_reconnect_and_symbol_picker() -> None:
    """Against a canned edge (tests/browser/_canned.py) with a token: history + live deltas,
    the forming bar moving, both panes aligned, colours in series and pixels, a server-side
    disconnect healed by the page itself, and the symbol picker."""
    edge = CannedEdge(token="s3cret", ticks_per_bar=20)  # a bar lasts 2 s
    await edge.start()
    try:
        async with chromium() as page:
            await page.call("Page.navigate", url=f"{edge.url}/?token=s3cret&symbol=SPY")
            d = await page.wait_for(
                DEBUG,
                lambda d: (
                    bool(d)
                    and d["drawn"]
                    and d["symbol"] == "SPY"
                    and d["candles"] >= 300
                    and d["counters"]["deltas"] >= 3
                ),
                timeout=TIMEOUT,
                what="history and live deltas",
            )
            assert d["period"] == "5m" and d["status"] == "live", d
            check_series(d)
            assert d["legend"]["symbol"] == "SPY" and d["legend"]["close"] != "–", d["legend"]
            assert d["legend"]["hmaDir"] in ("▲ up", "▼ down"), d["legend"]

            # the forming bar moves with the deltas (one bar seen at two closes), then closes
            # and a new bar forms
            first = d["lastCandle"]
            await page.wait_for(
                DEBUG, _forming_bar_moved(), timeout=TIMEOUT, what="the forming bar to move"
            )
            await page.wait_for(
                DEBUG,
                lambda x: x["lastCandle"]["time"] > first["time"],
                timeout=TIMEOUT,
                what="a new bar",
            )

            # both panes show the same logical range
            d = await page.evaluate(DEBUG)
            a, b = d["visibleLogicalRange"], d["macdVisibleLogicalRange"]
            assert a and b and abs(a["from"] - b["from"]) < 0.5 and abs(a["to"] - b["to"]) < 0.5

            png = await page.screenshot()
            _save_screenshot(png)
            counts = check_pixels(png, d)
            print("pixels per colour:", counts)

            # the crosshair: the legend shows the bar under the mouse, in both panes
            plot = d["rects"]["pricePlot"]
            x, y = plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2
            await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
            hover = await page.wait_for(
                DEBUG,
                lambda x: x["hoverTime"] is not None and x["legend"]["time"] != d["legend"]["time"],
                timeout=TIMEOUT,
                what="the legend to follow the crosshair",
            )
            assert hover["hoverTime"] < hover["lastCandle"]["time"]
            await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=2)  # the top bar
            await page.wait_for(
                DEBUG,
                lambda x: x["hoverTime"] is None,
                timeout=TIMEOUT,
                what="the legend to return to the newest bar",
            )

            # the server drops the socket: the page reconnects, resubscribes and goes on
            before = d["counters"]
            assert await edge.drop_all() == 1
            after = await page.wait_for(
                DEBUG,
                lambda x: (
                    x["counters"]["connects"] > before["connects"]
                    and x["status"] == "live"
                    and x["counters"]["snapshots"] > before["snapshots"]
                    and x["counters"]["deltas"] > before["deltas"] + 3
                ),
                timeout=TIMEOUT,
                what="reconnect and resubscribe",
            )
            assert after["counters"]["closes"] >= 1
            assert after["counters"]["historyLoads"] > before["historyLoads"]  # gap refilled

            # the symbol picker: QQQ's bars replace SPY's, SPY is unsubscribed
            await _select(page, "QQQ")
            q = await page.wait_for(
                DEBUG,
                lambda x: (
                    x["symbol"] == "QQQ"
                    and x["drawn"]
                    and x["candles"] >= 300
                    and x["lastBar"]["close"] < 450
                ),  # QQQ's canned prices are near 400
                timeout=TIMEOUT,
                what="QQQ after picking it",
            )
            check_series(q)
            assert {"unsubscribe": ["SPY"]} in edge.ws_received
            assert {"subscribe": ["QQQ"]} in edge.ws_received
            url = await page.evaluate("location.search")
            assert "symbol=QQQ" in url and "token=s3cret" in url
            assert not page.exceptions, page.exceptions
    finally:
        await edge.stop()
    assert edge.refused == 0, edge.requests  # every data request carried the token
    assert any(r.startswith("/history/SPY?") and "token=s3cret" in r for r in edge.requests)
    assert any(r.startswith("/ws?token=s3cret") for r in edge.requests)


async def test_chart_page_without_token_is_refused_and_says_so() -> None:
    """Opened without the token the edge wants: no data, the page shows the error and keeps
    retrying instead of breaking."""
    edge = CannedEdge(token="s3cret")
    await edge.start()
    try:
        async with chromium() as page:
            await page.call("Page.navigate", url=f"{edge.url}/")
            await page.wait_for(
                "document.getElementById('note').textContent",
                lambda t: bool(t) and "401" in t,
                timeout=TIMEOUT,
                what="the page to report the refusal",
            )
            await page.wait_for(
                DEBUG,
                lambda x: x["status"] == "reconnecting" and x["counters"]["connects"] == 0,
                timeout=TIMEOUT,
                what="the socket to be retried",
            )
            assert not page.exceptions, page.exceptions
    finally:
        await edge.stop()
    assert edge.refused >= 2


@contextlib.asynccontextmanager
async def offline_worker(token: str) -> AsyncIterator[str]:
    """``ttfast-worker --source sim --serve 127.0.0.1:<free port>`` (the offline worker with
    its edge); yields its base URL once /symbols lists SPY and QQQ."""
    port = free_port()
    env = {**os.environ, "TTFAST_EDGE_TOKEN": token}
    cmd = [
        *(sys.executable, "-m", "ttfast.worker"),
        *("--source", "sim", "--symbols", "SPY,QQQ", "--serve", f"127.0.0.1:{port}"),
        *("--duration", "600", "--quiet", "--log-level", "WARNING"),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise AssertionError(f"ttfast-worker exited {proc.returncode}: {out}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/symbols", params={"token": token}) as r:
                        if r.status == 200 and {"SPY", "QQQ"} <= set((await r.json())["symbols"]):
                            break
                assert time.monotonic() < deadline, "ttfast-worker --serve did not come up"
                await asyncio.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 30)
        if proc.stdout is not None:
            proc.stdout.close()


async def _ws_answers(base: str, token: str) -> bool:
    """Does the edge's /ws answer a subscribe (or close at once without a word)?"""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{base}/ws", params={"token": token}) as ws,
    ):
        await ws.send_json({"subscribe": ["SPY"]})
        msg = await ws.receive(timeout=10)
        return msg.type == aiohttp.WSMsgType.TEXT


async def test_chart_page_on_the_offline_worker() -> None:
    """The page served by the offline worker (``ttfast-worker --serve``, sim source, a token):
    its real history draws candles, both HMA colours and the four MACD histogram colours, its
    live deltas move the forming bar, and the picker switches symbols."""
    token = "t0ken-" + os.urandom(4).hex()
    async with offline_worker(token) as base, chromium() as page:
        await page.call("Page.navigate", url=f"{base}/?token={token}&symbol=SPY")
        d = await page.wait_for(
            DEBUG,
            lambda d: bool(d) and d["drawn"] and d["symbol"] == "SPY" and d["candles"] >= 300,
            timeout=TIMEOUT,
            what="the worker's history",
        )
        assert d["period"] == "5m", d
        check_series(d)
        png = await page.screenshot()
        _save_screenshot(png)
        try:
            check_pixels(png, d)
        except AssertionError:
            # the default zoom shows the newest ~160 bars: if they happen to lack a colour,
            # the whole history must have it
            await page.evaluate("window.ttfastChart.fit()")
            await page.evaluate("new Promise((r) => requestAnimationFrame(() => r(0)))")
            check_pixels(await page.screenshot(), await page.evaluate(DEBUG))

        assert await _ws_answers(base, token), "the worker's /ws closed without a message"
        d = await page.wait_for(
            DEBUG,
            lambda x: x["counters"]["snapshots"] >= 1 and x["counters"]["deltas"] >= 3,
            timeout=TIMEOUT,
            what="the worker's snapshot and deltas over /ws",
        )
        assert d["status"] == "live", d
        await page.wait_for(
            DEBUG, _forming_bar_moved(), timeout=TIMEOUT, what="the forming bar to move"
        )

        await _select(page, "QQQ")
        q = await page.wait_for(
            DEBUG,
            lambda x: x["symbol"] == "QQQ" and x["drawn"] and x["counters"]["snapshots"] >= 2,
            timeout=TIMEOUT,
            what="QQQ after picking it",
        )
        check_series(q)
        assert q["lastBar"]["close"] != d["lastBar"]["close"]
        assert not page.exceptions, page.exceptions
