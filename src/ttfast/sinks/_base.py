"""`BatchingSink`: the sender task, `flush()` and `close()` shared by the Redis, Telegraf and
InfluxDB v2 sinks.

The producer side of a sink only queues (never blocks, never raises) and sets `_wake`. One
sender task takes a batch, sends it and keeps it until the server has answered; a failed
attempt (server unreachable, throttled) is retried after an exponential backoff
(`backoff_initial` doubling up to `backoff_max`, no jitter), or after `_retry_after` seconds
if the failed `_send` set that and it is longer (a server's ``Retry-After``). The task sets
`_idle` once nothing is queued or in flight, which is what `flush()` waits for.

A subclass owns its queue, its wire format, its counters and its connection; it fills in the
hooks (`_has_work`, `_send`, `_shutdown`, `_unsent`, and optionally `_due`, `_open`,
`_prepare`, `_recovered`). Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import ClassVar

from ttfast._retry import Backoff
from ttfast._util import redact_url
from ttfast.sinks import LogLimiter


class BatchingSink(ABC):
    """Sender task lifecycle for a sink (see the module docstring)."""

    kind: ClassVar[str]  # log prefix and task name: "redis", "telegraf"
    _sender_name: ClassVar[str] = "sender"  # what the logs call the task
    _unit: ClassVar[str] = "items"  # what `_unsent()` counts

    def __init__(
        self, url: str, logger: logging.Logger, *, backoff_initial: float, backoff_max: float
    ) -> None:
        self.url = url
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._log = logger
        self._limiter = LogLimiter(logger)
        self._wake = asyncio.Event()  # set by the producer (and flush/close): work to look at
        self._idle = asyncio.Event()  # set by the sender: nothing queued, nothing in flight
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._flush_all = False  # flush() asked: send without waiting for `_due()`
        self._failing = 0  # consecutive failed attempts at the batch in flight
        self._retry_after = 0.0  # set by a failed `_send`: wait at least this long (Retry-After)

    # -- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def _has_work(self) -> bool:
        """Anything queued or in flight."""

    def _due(self) -> float:
        """Seconds to wait (or until woken) before the next attempt; <= 0: send now."""
        return 0.0

    @abstractmethod
    async def _send(self) -> bool:
        """One attempt at the batch in flight, taking one from the queue first if there is
        none. True once the batch is settled (acknowledged or refused for good): the sink is
        done with it. False to send the same batch again after the backoff."""

    def _open(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called by `start()` before the task starts (sockets, HTTP sessions)."""

    async def _prepare(self) -> None:  # noqa: B027 - optional hook, empty by default
        """First thing the sender task does."""

    def _recovered(self, failed: int) -> None:  # noqa: B027 - optional hook, empty by default
        """A batch was settled after `failed` failed attempts."""

    @abstractmethod
    def _unsent(self) -> int:
        """What would be lost if the sender stopped now (for its error log)."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """At close, once the sender has stopped: count whatever is still unsent as dropped,
        forget it, release the connection."""

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._open()
        self._task = asyncio.create_task(self._run(), name=f"ttfast-{self.kind}-sink")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "%s %s: %s stopped on an unexpected error; %d %s will not be sent",
                self.kind,
                redact_url(self.url),
                self._sender_name,
                self._unsent(),
                self._unit,
                exc_info=task.exception(),
            )

    @property
    def failing(self) -> bool:
        """Is the batch in flight being retried (the last attempt failed)?"""
        return self._failing > 0

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now; False if not all acknowledged within `timeout`."""
        if self._has_work():
            self._flush_all = True
            self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Flush (up to `timeout`), stop the sender, release the connection; what is still
        unacknowledged (queued or in flight) is counted as dropped."""
        if self._task is not None:
            if not self._task.done():
                await self.flush(timeout)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # already logged by _task_done
                pass
            self._task = None
        await self._shutdown()
        self._idle.set()  # nothing is pending any more: a later flush() has nothing to wait for

    # -- the sender task -----------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max, jitter="none")
        await self._prepare()
        while True:
            if not self._has_work():
                self._flush_all = False
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            due = self._due()
            if due > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)
                continue
            if await self._send():
                if self._failing:
                    self._recovered(self._failing)
                    self._failing = 0
                backoff.reset()
            else:
                self._failing += 1
                delay = max(backoff.next_delay(), self._retry_after)
                self._retry_after = 0.0
                await asyncio.sleep(delay)
