"""Who may talk to the local REST server: ``POST /oauth/token`` and the middleware that checks
every other request.

Any non-empty ``refresh_token`` + ``client_secret`` is granted unless the state pins
``credentials``; access tokens really expire after ``token_ttl`` seconds (then 401
``token_invalid``); a request without a ``User-Agent: product/version`` header gets 401 like the
real API. ``/_sim/*`` (the test hooks) needs neither.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from urllib.parse import parse_qs

from aiohttp import web

from ttfast.sim.rest.account_stream import STREAM_PATH
from ttfast.sim.rest.state import SimState, state_of
from ttfast.sim.rest.wire import Handler, error

__all__ = ["PUBLIC_PATHS", "auth_middleware", "oauth_token", "token_valid", "validate_session"]

#: routes the real API serves without a token (still with a User-Agent)
PUBLIC_PATHS = frozenset({"/oauth/token", "/margin-requirements-public-configuration"})


def token_valid(st: SimState, auth: object) -> bool:
    """``auth`` (``Bearer <token>`` or the bare token) is a live access token of ``st``."""
    if not isinstance(auth, str):
        return False
    tok = auth[7:] if auth.startswith("Bearer ") else auth
    exp = st.tokens.get(tok)
    return exp is not None and time.time() < exp


_UA_RE = re.compile(r"^[^\s/]+/\S+")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/") or request.path == STREAM_PATH:
        return await handler(request)  # the streamer checks the token of every message
    if not _UA_RE.match(request.headers.get("User-Agent", "")):
        return error(401, "invalid_user_agent", "User-Agent must look like <product>/<version>")
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not token_valid(state_of(request), auth):
        return error(401, "token_invalid", "This token is invalid or has expired")
    return await handler(request)


async def oauth_token(request: web.Request) -> web.Response:
    st = state_of(request)
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "")
    try:
        if "json" in ctype:
            body = json.loads(raw)
        else:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if not isinstance(body, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        return web.json_response(
            {"error": "invalid_request", "error_description": "malformed body"}, status=400
        )
    if body.get("grant_type") != "refresh_token":
        return web.json_response(
            {"error": "unsupported_grant_type", "error_description": "only refresh_token"},
            status=400,
        )
    secret, refresh = body.get("client_secret"), body.get("refresh_token")
    if not secret or not refresh:
        return web.json_response(
            {"error": "invalid_request", "error_description": "missing credentials"}, status=400
        )
    if st.credentials is not None and (secret, refresh) != st.credentials:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "Grant revoked or invalid"}, status=401
        )
    token = "sim-at-" + secrets.token_urlsafe(24)
    st.tokens[token] = time.time() + st.token_ttl
    st.token_grants += 1
    return web.json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": st.token_ttl,
            "scope": "read trade",
        }
    )


async def validate_session(request: web.Request) -> web.Response:
    """``POST /sessions/validate``: reached only with a valid token (the middleware), so 201."""
    return web.json_response(
        {
            "data": {
                "email": "sim@example.invalid",
                "username": "sim",
                "external-id": "Usim",
                "id": 1,
            },
            "context": request.path,
        },
        status=201,
    )
