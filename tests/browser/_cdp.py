"""Headless Chromium driven over the DevTools protocol (CDP) with aiohttp: no selenium/playwright.

`chromium()` starts Debian's ``chromium`` in its own process group with a throw-away profile,
reads the DevTools port from the profile's ``DevToolsActivePort`` file and yields a `Page`
attached to the first tab; on exit the browser is closed (Browser.close, then SIGTERM/SIGKILL to
its process group) and the profile is deleted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM_FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    pytest.skip("chromium is not installed (apt-get install chromium)")


class Page:
    """One tab: `call` sends a CDP command and returns its result; console messages and
    uncaught exceptions are kept in `console` / `exceptions`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self.exceptions: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    fut = self._pending.pop(data["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(data)
                elif data.get("method") == "Runtime.consoleAPICalled":
                    p = data["params"]
                    args = " ".join(
                        str(a.get("value", a.get("description", ""))) for a in p["args"]
                    )
                    self.console.append(f"{p['type']}: {args}")
                elif data.get("method") == "Runtime.exceptionThrown":
                    d = data["params"]["exceptionDetails"]
                    self.exceptions.append(
                        str(d.get("exception", {}).get("description", d.get("text")))
                    )
                elif data.get("method") == "Log.entryAdded":
                    e = data["params"]["entry"]
                    self.console.append(f"log {e['level']}: {e['text']} {e.get('url', '')}")
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("DevTools connection closed"))

    async def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        await self._ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        r = await self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"{expression!r}: {d.get('exception', {}).get('description', d)}")
        return r["result"].get("value")

    async def wait_for(
        self,
        expression: str,
        predicate: Callable[[Any], bool],
        *,
        timeout: float,
        what: str,
        interval: float = 0.1,
    ) -> Any:
        """Poll `expression` until `predicate(value)`; on timeout fail with the last value, the
        page's console and its exceptions."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            with contextlib.suppress(RuntimeError):
                value = await self.evaluate(expression)
                if predicate(value):
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; last value: {value!r}; "
                    f"console: {self.console[-20:]!r}; exceptions: {self.exceptions!r}"
                )
            await asyncio.sleep(interval)

    async def screenshot(self) -> bytes:
        r = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        return base64.b64decode(r["data"])

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


def _kill_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
    # renderer/zygote children left in the group after the browser itself exited
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # the group is empty
        except PermissionError:  # only zombies left (reaped by init)
            return
        time.sleep(0.05)


@contextlib.asynccontextmanager
async def chromium(width: int = 1280, height: int = 760) -> AsyncIterator[Page]:
    exe = find_chromium()
    profile = tempfile.mkdtemp(prefix="ttfast-chromium-")
    log_path = Path(profile).parent / (Path(profile).name + ".log")
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [exe, *flags, "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    session: aiohttp.ClientSession | None = None
    page: Page | None = None
    try:
        port_file = Path(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited {proc.returncode}: {log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start in 60 s: {log_path.read_text()}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split("\n", 1)[0])
        session = aiohttp.ClientSession()
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = [t for t in await r.json() if t.get("type") == "page"]
            if targets:
                break
            await asyncio.sleep(0.05)
        if not targets:
            raise RuntimeError("chromium has no page target")
        ws = await session.ws_connect(
            targets[0]["webSocketDebuggerUrl"], max_msg_size=0, timeout=aiohttp.ClientWSTimeout()
        )
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
    finally:
        if page is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(page.call("Browser.close"), 5)
            with contextlib.suppress(Exception):
                await page.close()
        if session is not None:
            await session.close()
        await asyncio.to_thread(_kill_group, proc)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
        log_path.unlink(missing_ok=True)
