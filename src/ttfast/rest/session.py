"""OAuth2 session for the tastytrade API: access-token lifecycle + one pooled aiohttp client.

Token flow (spec §2.1): ``POST /oauth/token`` with ``grant_type=refresh_token``, the refresh
token, the client secret (and the client id if given), never carrying a (stale)
``Authorization`` header; the answer is a bare OAuth2 object (``access_token``, ``expires_in``).
The token is refreshed proactively ``refresh_margin`` seconds (default 60) before it expires;
concurrent callers share one in-flight refresh (single-flight lock with re-check). Transient
refresh failures (connection errors, timeouts, 5xx, 429) are retried a bounded number of times
with exponential backoff and jitter; a definitive rejection (400/401/403) raises
:class:`ttfast.errors.AuthError` at once. The token POST never follows a redirect (a 3xx raises
``AuthError(code="redirect_not_followed")`` at once: the refresh token and client secret are
never re-sent to another URL). Both error shapes are parsed: RFC 6749
``{"error", "error_description"}`` and tastytrade's ``{"error_code", "error_description"}`` (and
the normal ``{"error": {"code", "message"}}`` envelope).

Every request carries ``User-Agent: ttfast/<version>``; ``Accept-Version`` is configurable
(default: pinned in production, absent in sandbox, which answered 404 to orders with it, §3).

Secrets (client secret, refresh token, access tokens) never appear in reprs, logs or exception
messages. A ``token_store`` (e.g. :class:`FileTokenStore`) lets other processes reuse a live
access token instead of minting their own.

Environment variables for :meth:`OAuthSession.from_env`: ``TASTYTRADE_CLIENT_SECRET``,
``TASTYTRADE_REFRESH_TOKEN`` (required), ``TASTYTRADE_CLIENT_ID``, ``TASTYTRADE_ENV``
(``production``/``sandbox``), ``TASTYTRADE_BASE_URL``, ``TASTYTRADE_ACCEPT_VERSION``
(empty string = send none).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import aiohttp
import msgspec

from ttfast._retry import Backoff
from ttfast._util import redact_url
from ttfast._version import __version__
from ttfast.errors import AuthError
from ttfast.rest.lane import OrderLane

__all__ = [
    "DEFAULT_ACCEPT_VERSION",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AccessToken",
    "FileTokenStore",
    "OAuthSession",
    "TokenStore",
    "parse_token_error",
]

log = logging.getLogger("ttfast.rest.session")

PRODUCTION_URL = "https://api.tastyworks.com"
SANDBOX_URL = "https://api.cert.tastyworks.com"
#: The order-api version pinned in production (what the tastyware SDK pins, spec §3).
DEFAULT_ACCEPT_VERSION = "20251101"
USER_AGENT = f"ttfast/{__version__}"
_DEFAULT_EXPIRES_IN = 900.0

_UNSET: Any = object()


class AccessToken:
    """An access token and its absolute expiry (``time.time()`` seconds). Repr hides the token."""

    __slots__ = ("expires_at", "token")

    def __init__(self, token: str, expires_at: float) -> None:
        self.token = token
        self.expires_at = expires_at

    def remaining(self) -> float:
        return self.expires_at - time.time()

    def to_json(self) -> str:
        return json.dumps({"access_token": self.token, "expires_at": self.expires_at})

    @classmethod
    def from_json(cls, s: str | bytes) -> AccessToken:
        d = json.loads(s)
        return cls(str(d["access_token"]), float(d["expires_at"]))

    def __repr__(self) -> str:
        return f"AccessToken(<hidden>, expires in {self.remaining():.0f}s)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AccessToken)
            and other.token == self.token
            and other.expires_at == self.expires_at
        )

    __hash__ = None  # type: ignore[assignment]


class TokenStore(Protocol):
    """Persist/restore the access token (so several processes share one)."""

    async def load(self) -> AccessToken | None: ...

    async def save(self, token: AccessToken) -> None: ...


class FileTokenStore:
    """A :class:`TokenStore` in a JSON file written atomically with mode 0600."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    async def load(self) -> AccessToken | None:
        try:
            with open(self.path, "rb") as f:
                return AccessToken.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def save(self, token: AccessToken) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".ttfast-token-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token.to_json())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r})"


def parse_token_error(status: int, body: bytes) -> tuple[str | None, str]:
    """``(code, message)`` from an OAuth error body in any of the three known shapes."""
    try:
        d = json.loads(body)
    except ValueError:
        return None, f"HTTP {status} with a non-JSON body ({len(body)} bytes)"
    if not isinstance(d, dict):
        return None, f"HTTP {status} with an unexpected JSON body"
    err = d.get("error")
    if isinstance(err, dict):  # normal API envelope
        code = err.get("code")
        return (None if code is None else str(code)), str(err.get("message") or "")
    code = d.get("error_code", err)
    desc = d.get("error_description") or d.get("message") or ""
    return (None if code is None else str(code)), str(desc)


class OAuthSession:
    """Holds the OAuth credentials, the current access token and the pooled HTTP client.

    Use as ``async with OAuthSession(...) as session:``. ``await session.access_token()`` returns
    a valid token (refreshing when needed); :meth:`headers` builds request headers. The REST
    client (:class:`ttfast.rest.TastytradeClient`) does all of this for you.
    """

    def __init__(
        self,
        client_secret: str,
        refresh_token: str,
        client_id: str | None = None,
        env: Literal["production", "sandbox"] = "production",
        base_url: str | None = None,
        *,
        accept_version: str | None = _UNSET,
        refresh_margin: float = 60.0,
        refresh_attempts: int = 4,
        refresh_backoff: float = 0.25,
        request_timeout: float = 15.0,
        connector_limit: int = 64,
        keepalive_timeout: float = 15.0,
        token_store: TokenStore | None = None,
        on_refresh: Callable[[AccessToken], Awaitable[None] | None] | None = None,
    ) -> None:
        if not client_secret or not refresh_token:
            raise ValueError("client_secret and refresh_token are required (non-empty)")
        if env not in ("production", "sandbox"):
            raise ValueError(f"env must be 'production' or 'sandbox', got {env!r}")
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self.client_id = client_id
        self.env = env
        self.base_url = (
            base_url or (PRODUCTION_URL if env == "production" else SANDBOX_URL)
        ).rstrip("/")
        if accept_version is _UNSET:
            accept_version = DEFAULT_ACCEPT_VERSION if env == "production" else None
        self.accept_version: str | None = accept_version or None
        self.refresh_margin = refresh_margin
        self.refresh_attempts = max(1, refresh_attempts)
        self.refresh_backoff = refresh_backoff
        self.request_timeout = request_timeout
        self.user_agent = USER_AGENT
        self._connector_limit = connector_limit
        self._keepalive_timeout = keepalive_timeout
        self._token_store = token_store
        self._on_refresh = on_refresh
        self._token: AccessToken | None = None
        self._revoked: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._lane: OrderLane | None = None
        #: number of successful token grants obtained by this session (observability/tests)
        self.refresh_count = 0

    @classmethod
    def from_env(cls, **kwargs: Any) -> OAuthSession:
        """Build from ``TASTYTRADE_*`` environment variables (see module docstring)."""
        env = os.environ
        secret = env.get("TASTYTRADE_CLIENT_SECRET", "")
        refresh = env.get("TASTYTRADE_REFRESH_TOKEN", "")
        if not secret or not refresh:
            raise AuthError(
                0,
                "missing_credentials",
                "set TASTYTRADE_CLIENT_SECRET and TASTYTRADE_REFRESH_TOKEN",
            )
        kwargs.setdefault("client_id", env.get("TASTYTRADE_CLIENT_ID") or None)
        kwargs.setdefault("env", env.get("TASTYTRADE_ENV", "production").strip().lower())
        kwargs.setdefault("base_url", env.get("TASTYTRADE_BASE_URL") or None)
        if "TASTYTRADE_ACCEPT_VERSION" in env:
            kwargs.setdefault("accept_version", env["TASTYTRADE_ACCEPT_VERSION"] or None)
        return cls(secret, refresh, **kwargs)

    def __repr__(self) -> str:
        state = "no token" if self._token is None else repr(self._token)
        return f"OAuthSession(env={self.env!r}, base_url={self.base_url!r}, {state})"

    # --- HTTP client ----------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared pooled client (created lazily inside a running loop)."""
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connector_limit, keepalive_timeout=self._keepalive_timeout
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            )
            # aiohttp silently resends PUT/DELETE once when a pooled connection turns out to be
            # closed. Order mutations must never be resent, and ttfast does its own GET retries.
            if hasattr(self._http, "_retry_connection"):  # aiohttp >= 3.10
                self._http._retry_connection = False
        return self._http

    async def __aenter__(self) -> OAuthSession:
        _ = self.http
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def order_lane(self) -> OrderLane:
        """The kept-alive connection reserved for order mutations (`ttfast.rest.lane`),
        created on first use, closed by `close`."""
        if self._lane is None:
            self._lane = OrderLane(self.base_url, self.user_agent)
        return self._lane

    async def close(self) -> None:
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    # --- tokens ---------------------------------------------------------------------------------

    @property
    def token(self) -> AccessToken | None:
        """The current access token (may be stale); for persistence hooks."""
        return self._token

    def set_token(self, token: AccessToken | None) -> None:
        """Install an access token obtained elsewhere (e.g. from another process)."""
        self._token = token

    def _fresh(self, tok: AccessToken | None) -> bool:
        return tok is not None and time.time() < tok.expires_at - self.refresh_margin

    async def access_token(self) -> str:
        """A valid access token, refreshing (single-flight) when within the refresh margin."""
        tok = self._token
        if tok is not None and self._fresh(tok):
            return tok.token
        return (await self.refresh()).token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the current token (after a 401). With ``token``, only if it is still current."""
        if token is not None:
            self._revoked = (*self._revoked[-7:], token)  # never reload it from the store
        if self._token is not None and (token is None or self._token.token == token):
            self._token = None

    async def refresh(self, force: bool = False) -> AccessToken:
        """Mint a new access token unless the current one is fresh (or ``force``)."""
        stale = self._token
        async with self._lock:
            # single flight: whoever waited on the lock reuses the token the winner obtained
            if self._token is not None and self._token is not stale and self._fresh(self._token):
                return self._token
            if not force and self._fresh(self._token):
                assert self._token is not None
                return self._token
            if not force and self._token_store is not None:
                stored = await self._token_store.load()
                if stored is not None and self._fresh(stored) and stored.token not in self._revoked:
                    log.info(
                        "using access token from token store (expires in %.0fs)", stored.remaining()
                    )
                    self._token = stored
                    return stored
            tok = await self._grant()
            self._token = tok
            self.refresh_count += 1
            if self._token_store is not None:
                try:
                    await self._token_store.save(tok)
                except Exception as exc:  # persisting is best effort
                    log.warning("token store save failed: %s", type(exc).__name__)
            if self._on_refresh is not None:
                r = self._on_refresh(tok)
                if r is not None:
                    await r
            return tok

    def _token_body(self) -> dict[str, str]:
        body = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_secret": self._client_secret,
        }
        if self.client_id:
            body["client_id"] = self.client_id
        return body

    async def _grant(self) -> AccessToken:
        url = self.base_url + "/oauth/token"
        last: AuthError | None = None
        # no cap: refresh_attempts bounds the schedule
        backoff = Backoff(self.refresh_backoff, math.inf, jitter="centered")
        for attempt in range(self.refresh_attempts):
            if attempt:
                delay = backoff.next_delay()
                log.warning(
                    "token refresh attempt %d/%d failed (%s); retrying in %.2fs",
                    attempt,
                    self.refresh_attempts,
                    last.message if last else "?",
                    delay,
                )
                await asyncio.sleep(delay)
            headers = {"Content-Type": "application/json"}  # no Authorization header here
            try:
                # never follow a redirect: 307/308 would re-POST the refresh token and the
                # client secret to wherever the Location points
                async with self.http.post(
                    url,
                    data=json.dumps(self._token_body()),
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    location = resp.headers.get("Location", "")
                    body = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = AuthError(
                    0,
                    "connection_error",
                    f"token request failed: {type(exc).__name__}",
                    path="/oauth/token",
                )
                continue
            if 200 <= status < 300:
                try:
                    d = msgspec.json.decode(body)
                    token = d["access_token"]
                    if not isinstance(token, str) or not token:
                        raise TypeError
                    expires_in = float(d.get("expires_in") or _DEFAULT_EXPIRES_IN)
                except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
                    last = AuthError(
                        status,
                        "malformed_token_response",
                        "token endpoint returned an unusable body",
                        path="/oauth/token",
                    )
                    continue
                log.info("access token refreshed (expires in %.0fs)", expires_in)
                return AccessToken(token, time.time() + expires_in)
            if 300 <= status < 400:
                target = redact_url(location, from_peer=True) or "?"
                log.error(
                    "token endpoint answered HTTP %d (redirect to %s); not followed", status, target
                )
                raise AuthError(
                    status,
                    "redirect_not_followed",
                    f"token endpoint redirected to {target}; not followed (credentials are "
                    "never sent to a redirect target): check base_url",
                    path="/oauth/token",
                )
            code, message = parse_token_error(status, body)
            err = AuthError(status, code, message or "token refresh rejected", path="/oauth/token")
            if status == 429 or status >= 500:
                last = err
                continue
            log.error("token refresh rejected: HTTP %d %s", status, code)
            raise err
        assert last is not None
        log.error("token refresh failed after %d attempts: %s", self.refresh_attempts, last.message)
        raise last

    async def headers(self) -> dict[str, str]:
        """Request headers with a valid bearer token (and Accept-Version if configured)."""
        h = {"Authorization": "Bearer " + await self.access_token()}
        if self.accept_version:
            h["Accept-Version"] = self.accept_version
        return h
