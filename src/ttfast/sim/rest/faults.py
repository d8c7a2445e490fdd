"""Fault injection of the local REST server: the middleware that applies :class:`Fault` switches
to matching requests, and the test hooks ``GET /_sim/state``, ``POST /_sim/faults`` (a Fault as
JSON) and ``DELETE /_sim/faults``.

A fault may fire *after* the real handler ran (``after_handler``), e.g. an order that was
accepted and stored but whose response never arrives; ``SimState.orders_accepted`` lets tests
prove nothing was sent twice. The middleware also counts every request and applies the
server-wide latency.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

from aiohttp import web

from ttfast.sim.rest.state import Fault, state_of
from ttfast.sim.rest.wire import Handler, error, json_body

__all__ = ["add_fault", "clear_faults", "fault_middleware", "sim_state"]

log = logging.getLogger("ttfast.sim.rest")


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = state_of(request)
    st.requests[f"{request.method} {request.path}"] += 1
    if st.latency:
        await asyncio.sleep(st.latency)
    fault = next((f for f in st.faults if f.matches(request)), None)
    if fault is None:
        return await handler(request)
    if fault.count > 0:
        fault.count -= 1
    log.info("sim fault %s on %s %s", fault.kind, request.method, request.path)
    if fault.kind == "latency":
        await asyncio.sleep(fault.seconds)
        return await handler(request)
    resp: web.StreamResponse | None = None
    if fault.after_handler:
        resp = await handler(request)
    if fault.kind == "hang":
        await asyncio.sleep(fault.seconds or 3600.0)
        return resp if resp is not None else await handler(request)
    if fault.kind == "status":
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status)
        return error(fault.status, "sim_fault", f"simulated HTTP {fault.status}")
    if fault.kind == "malformed":
        return web.Response(
            body=b'{"data": {"items": [{"id": 1,', status=200, content_type="application/json"
        )
    # drop: close the socket without answering
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp treats this as a lost client: nothing is written


async def sim_state(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).summary())


async def add_fault(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        f = Fault(**body)
    except (TypeError, ValueError) as exc:
        return error(400, "invalid_fault", str(exc))
    state_of(request).faults.append(f)
    return web.json_response(asdict(f), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    state_of(request).faults.clear()
    return web.json_response({"faults": []})
