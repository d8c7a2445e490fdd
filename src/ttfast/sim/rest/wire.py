"""The API's wire shapes, shared by every handler of the local REST server.

Envelopes (``{"data": ..., "api-version", "context": path}``, lists under ``data.items``, a
``pagination`` block), the error envelope ``{"error": {"code", "message", "errors": [...]}}``
(as a response or as a raised 404/400), timestamps (ISO with milliseconds, epoch milliseconds)
and lenient decimals. Touches no server state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from aiohttp import web

__all__ = [
    "Handler",
    "at_ms",
    "dec",
    "epoch_ms",
    "error",
    "iso",
    "items",
    "json_body",
    "not_found",
    "now",
    "ok",
    "paged",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def now() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def at_ms(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds ``ms`` (the inverse of :func:`epoch_ms`)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def dec(x: Any) -> Decimal | None:
    """``x`` as a Decimal (numbers or numeric strings); ``None`` if absent or not a number."""
    if x is None:
        return None
    try:
        return Decimal(str(x))
    except InvalidOperation:
        return None


def _error_body(
    code: str | int, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    e: dict[str, Any] = {"code": code, "message": message}
    if errors:
        e["errors"] = errors
    return {"error": e}


def error(
    status: int, code: str | int, message: str, errors: list[dict[str, str]] | None = None
) -> web.Response:
    return web.json_response(_error_body(code, message, errors), status=status)


def not_found(message: str) -> NoReturn:
    """Raise the API's 404 ``record_not_found`` (from helpers deep inside a handler)."""
    raise web.HTTPNotFound(
        text=json.dumps(_error_body("record_not_found", message)), content_type="application/json"
    )


def ok(
    request: web.Request, data: Any, status: int = 200, pagination: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"data": data, "api-version": "v1", "context": request.path}
    if pagination is not None:
        body["pagination"] = pagination
    return web.json_response(body, status=status)


def items(request: web.Request, rows: list[Any]) -> web.Response:
    return ok(request, {"items": rows})


def paged(request: web.Request, rows: list[Any], default_per_page: int) -> web.Response:
    """One page of ``rows`` (``per-page`` / ``page-offset`` query) with its pagination block."""
    q = request.query
    try:
        per_page = max(1, int(q.get("per-page", default_per_page)))
        offset = max(0, int(q.get("page-offset", 0)))
    except ValueError:
        return error(400, "invalid_params", "per-page/page-offset must be integers")
    total = len(rows)
    pages = max(1, -(-total // per_page))
    chunk = rows[offset * per_page : (offset + 1) * per_page]
    pag = {
        "per-page": per_page,
        "page-offset": offset,
        "item-offset": offset * per_page,
        "total-items": total,
        "total-pages": pages,
        "current-item-count": len(chunk),
        "previous-link": None,
        "next-link": None,
        "paging-link-template": None,
    }
    return ok(request, {"items": chunk}, pagination=pag)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; malformed JSON raises the API's 400 ``invalid_json``."""
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps(_error_body("invalid_json", "Malformed JSON")),
            content_type="application/json",
        ) from None
