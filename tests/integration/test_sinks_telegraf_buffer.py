"""TelegrafSink buffer accounting against a real (loopback aiohttp) HTTP peer that we script.

The peer holds every POST /write until the test answers it (a slow server) with 204, 500 /
429 (retried) or 400 (rejected), so the test controls exactly when a batch is in flight while
the producer keeps writing into a small buffer. Every line carries a sequence number, so the
test knows which lines reached the server, which were rejected and which were dropped.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttfast.sinks.telegraf import TelegrafSink

_SEQ = re.compile(rb"^m,s=a v=(\d+)i (\d+)$")


def _lines(start: int, k: int) -> bytes:
    """k lines of 24 bytes each, numbered from `start`."""
    return b"".join(b"m,s=a v=%06di 1%06d\n" % (i, i) for i in range(start, start + k))


def _seqs(body: bytes) -> list[int]:
    out = []
    for ln in body.splitlines():
        m = _SEQ.match(ln)
        assert m is not None, ln
        out.append(int(m.group(1)))
    return out


@dataclass
class ScriptedPeer:
    """POST /write bodies are recorded and held until `answer()`; `auto` answers at once."""

    requests: list[bytes] = field(default_factory=list)  # every attempt, retries included
    resolved: list[tuple[int, bytes]] = field(default_factory=list)  # (status, body) answered
    pending: list[tuple[asyncio.Future[int], bytes]] = field(default_factory=list)
    auto: int | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    url: str = ""

    async def _write(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(body)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.auto is not None:
            fut.set_result(self.auto)
        else:
            self.pending.append((fut, body))
            self.arrived.set()
        status = await fut
        self.resolved.append((status, body))
        text = '{"error":"partial write: field type conflict"}' if status == 400 else "{}"
        return web.Response(status=status, text=text if status != 204 else None)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/write", self._write)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def wait_request(self, timeout: float = 10.0) -> None:
        while not self.pending:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout)

    def answer(self, status: int) -> None:
        fut, _ = self.pending.pop(0)
        fut.set_result(status)

    def answer_all(self, status: int) -> None:
        self.auto = status
        while self.pending:
            self.answer(status)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _check_invariant(sink: TelegrafSink) -> None:
    s = sink.stats
    assert s.lines_enqueued == s.lines_sent + s.lines_dropped + s.lines_rejected + (
        sink.backlog_lines
    ), s
    # a lone chunk (nothing in flight) or the in-flight batch (<= batch_bytes or one line) may
    # exceed a tiny max_buffer_bytes; otherwise the bound holds
    bound = max(sink.max_buffer_bytes, sink.batch_bytes, 24)
    assert 0 <= s.buffered_bytes <= bound, s


# ops: ("w", k) write k lines; ("y", 0) wait until a batch is in flight at the peer;
# ("r", status) wait for a batch in flight and answer it with `status`
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(1, 12)),
        st.tuples(st.just("y"), st.just(0)),
        st.tuples(st.just("r"), st.sampled_from([204, 204, 500, 429, 400])),
    ),
    min_size=1,
    max_size=30,
)


async def _scenario(ops: list[tuple[str, int]], batch_bytes: int, max_buffer: int) -> None:
    peer = ScriptedPeer()
    await peer.start()
    sink = TelegrafSink(
        peer.url,
        batch_bytes=batch_bytes,
        max_buffer_bytes=max_buffer,
        flush_interval=0.0,
        backoff_initial=0.001,
        backoff_max=0.005,
        timeout=30.0,  # never times out here: an answered batch is answered exactly once
        create_database=False,
    )
    await sink.start()
    seq = 0
    try:
        for op, arg in ops:
            if op == "w":
                sink.write_lines(_lines(seq, arg), arg)
                seq += arg
                for _ in range(5):  # let the flusher take a batch and start its POST
                    await asyncio.sleep(0)
            elif sink.backlog_lines:  # something to send: a request is (or will be) in flight
                await peer.wait_request()
                if op == "r":
                    peer.answer(arg)
                    for _ in range(5):
                        await asyncio.sleep(0)
            _check_invariant(sink)
        peer.answer_all(204)
        assert await sink.flush(10.0)
        _check_invariant(sink)
        assert sink.backlog_lines == 0 and sink.stats.buffered_bytes == 0
    finally:
        peer.answer_all(204)
        await sink.close(timeout=5.0)
        await peer.stop()

    s = sink.stats
    _check_invariant(sink)
    assert s.lines_enqueued == seq
    sent = [x for status, body in peer.resolved if status < 300 for x in _seqs(body)]
    rejected = [x for status, body in peer.resolved if status == 400 for x in _seqs(body)]
    # what the server acknowledged is exactly what was counted sent, each line once
    assert len(sent) == s.lines_sent and len(set(sent)) == len(sent)
    assert len(rejected) == s.lines_rejected
    # FIFO: acknowledged or refused batches come in write order, nothing twice
    final = [x for status, body in peer.resolved if status in (204, 400) for x in _seqs(body)]
    assert final == sorted(set(final))
    dropped = set(range(seq)) - set(final)
    assert len(dropped) == s.lines_dropped
    # a line once handed to the sender is never dropped by overflow
    attempted = {x for body in peer.requests for x in _seqs(body)}
    assert not (dropped & attempted)
    # a retried batch (500/429) is re-sent unchanged, and only after a retryable answer
    attempts = peer.requests
    answers = [status for status, _ in peer.resolved]
    for i in range(1, len(attempts)):
        if answers[i - 1] in (500, 429):
            assert attempts[i] == attempts[i - 1]
        else:
            assert not set(_seqs(attempts[i])) & set(_seqs(attempts[i - 1]))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=_OPS,
    batch_bytes=st.sampled_from([20, 64, 200, 1000]),
    max_buffer=st.sampled_from([30, 100, 300, 2000]),
)
def test_buffer_accounting_with_slow_and_failing_server(
    ops: list[tuple[str, int]], batch_bytes: int, max_buffer: int
) -> None:
    asyncio.run(_scenario(ops, batch_bytes, max_buffer))


async def test_overflow_while_in_flight_keeps_the_batch_being_sent() -> None:
    """The exact issue-13 scenario: overflow during a POST must not touch the in-flight batch."""
    peer = ScriptedPeer()
    await peer.start()
    sink = TelegrafSink(
        peer.url, batch_bytes=200, max_buffer_bytes=300, flush_interval=0.0, create_database=False
    )
    await sink.start()
    sink.write_lines(_lines(0, 5), 5)  # 5 lines x 24 B = 120 B: one batch
    await peer.wait_request()
    for i in range(5, 25):  # 20 single lines while the POST is held: overflow
        sink.write_lines(_lines(i, 1), 1)
        _check_invariant(sink)
    # 120 B in flight leave room for 7 unsent lines (168 B <= 300 B); 13 oldest unsent dropped
    assert sink.backlog_lines == 5 + 7
    assert sink.stats.lines_dropped == 13
    assert sink.stats.buffered_bytes == 120 + 7 * 24
    peer.answer_all(204)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    sent = [x for status, body in peer.resolved if status < 300 for x in _seqs(body)]
    assert sent == [0, 1, 2, 3, 4, *range(18, 25)]
    assert sink.stats.lines_sent == len(sent) and sink.stats.lines_dropped == 13


async def test_close_with_batch_in_flight_counts_it_dropped() -> None:
    peer = ScriptedPeer()
    await peer.start()
    sink = TelegrafSink(peer.url, flush_interval=0.0, create_database=False)
    await sink.start()
    sink.write_lines(_lines(0, 3), 3)
    await peer.wait_request()
    sink.write_lines(_lines(3, 2), 2)
    await sink.close(timeout=0.05)  # the server never answers
    s = sink.stats
    assert s.lines_sent == 0 and s.lines_dropped == 5 and sink.backlog_lines == 0
    assert s.lines_enqueued == 5 and s.buffered_bytes == 0
    peer.answer_all(204)
    await peer.stop()


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_is_retried_not_rejected(status: int) -> None:
    peer = ScriptedPeer()
    await peer.start()
    sink = TelegrafSink(
        peer.url, flush_interval=0.0, backoff_initial=0.001, backoff_max=0.01, create_database=False
    )
    await sink.start()
    sink.write_lines(_lines(0, 4), 4)
    await peer.wait_request()
    peer.answer(status)
    await peer.wait_request()
    peer.answer(status)
    peer.answer_all(204)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    assert sink.stats.lines_sent == 4 and sink.stats.lines_rejected == 0
    assert sink.stats.retries == 2
    assert peer.requests == [_lines(0, 4)] * 3
