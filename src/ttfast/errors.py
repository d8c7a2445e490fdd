"""ttfast's exception tree (one root, so callers can catch everything ttfast raises).

This module is a leaf (stdlib + the stdlib-only ``ttfast._util``): the compiled core imports it
to raise these exceptions, so it must never import anything else from ttfast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ttfast._util import redact_url

__all__ = [
    "MAX_RAW_BODY",
    "ApiConnectionError",
    "ApiError",
    "AuthError",
    "DecodeError",
    "OrderOutcomeUnknown",
    "OrderValidationError",
    "RateLimitedError",
    "ResponseDecodeError",
    "TtfastError",
]


class TtfastError(Exception):
    """Root of every exception raised by ttfast."""


class DecodeError(TtfastError, ValueError):
    """A market-data message could not be decoded.

    ``offset`` is the byte offset in the (UTF-8) frame where the problem was found and ``reason``
    a short human-readable description. The frame text itself is never included (it may be
    large); log it yourself if you need it.
    """

    offset: int
    reason: str

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (at byte {self.offset})"


# --- REST / OAuth errors (ttfast.rest) ------------------------------------------------------------


class ApiError(TtfastError):
    """The tastytrade API answered with an error (non-2xx) or an unusable body.

    ``status`` is the HTTP status (0 when no response was received), ``code`` the machine-readable
    ``error.code`` (a string, or an int such as 406 for version errors; ``None`` if absent),
    ``message`` the human text, ``errors`` the nested ``error.errors[]`` entries as
    ``(code, message)`` pairs (``domain``/``reason`` entries are mapped onto the same pair) and
    ``path`` the request path (no query string, never a token). Branch on ``code``/``codes``,
    never on ``message``.

    From an order mutation (place, replace, cancel, complex) an ``ApiError`` is a **definite
    rejection**: a 4xx (not 401/408) with the API's error body; nothing was created or changed.
    Every other failure of those calls is :class:`OrderOutcomeUnknown`, which is not an
    ``ApiError``. Dry-runs create nothing and raise only ``ApiError`` subclasses.
    """

    def __init__(
        self,
        status: int,
        code: str | int | None,
        message: str,
        *,
        errors: tuple[tuple[str, str], ...] = (),
        path: str = "",
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.path = path

    @property
    def codes(self) -> tuple[str, ...]:
        """Nested error codes, e.g. ``("cant_buy_for_credit",)`` for a 422 preflight failure."""
        return tuple(c for c, _ in self.errors)

    def __str__(self) -> str:
        head = f"HTTP {self.status} {self.code}: {self.message}" if self.status else self.message
        if self.path:
            head += f" [{self.path}]"
        if self.errors:
            head += " (" + "; ".join(f"{c}: {m}" for c, m in self.errors) + ")"
        return head


class AuthError(ApiError):
    """OAuth token refresh failed, or the API rejected our credentials/token (401/403)."""


class RateLimitedError(ApiError):
    """HTTP 429: the request was throttled and not processed."""


class ApiConnectionError(ApiError):
    """No usable HTTP response (connection refused/lost, timeout) after the allowed retries."""


class ResponseDecodeError(ApiError):
    """A 2xx response whose body was not valid JSON or did not fit the expected shape (GETs and
    dry-runs; order mutations raise :class:`OrderOutcomeUnknown` instead: the order may exist).

    ``raw`` holds the decoded JSON (``None`` if the body was not JSON at all).
    """

    raw: object = None


class OrderValidationError(TtfastError, ValueError):
    """An order violates a documented rule; raised by ttfast before anything is sent."""


#: Bytes of a response body an :class:`OrderOutcomeUnknown` keeps (``body_size`` has the total).
MAX_RAW_BODY = 8192

#: Header names containing one of these (case-insensitively) have their values redacted.
_SECRET_HEADER_PARTS = ("auth", "cookie", "token", "secret", "session", "key", "password", "sign")
_URL_HEADERS = frozenset({"location", "content-location", "uri", "link", "refresh"})
_REDACTED = "<redacted>"

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        text = text.replace(s, _REDACTED)
    return text


def _safe_headers(headers: Headers | None, secrets: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    if headers is None:
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        low = name = str(name).lower()
        if any(p in low for p in _SECRET_HEADER_PARTS):
            v = _REDACTED
        elif low in _URL_HEADERS:
            v = redact_url(value, from_peer=True)
        else:
            v = _scrub(str(value), secrets)
        out[name] = out[name] + ", " + v if name in out else v
    return out


class OrderOutcomeUnknown(TtfastError):
    """An order mutation got no definite answer: the order may or may not exist / be changed.

    Raised by ``place_order``, ``place_complex_order``, ``replace_order``, ``cancel_order`` and
    ``cancel_complex_order`` for every answer that is neither a well-formed success nor a
    definite rejection (a 4xx with the API's error body, raised as :class:`ApiError`): timeout,
    lost connection (also after the status line), any 5xx, a 401, a redirect (never followed),
    a 4xx without the API's error body, a 2xx whose body is not the expected JSON. ttfast NEVER
    resends such a request. Not an :class:`ApiError`, so ``except ApiError`` never swallows it.

    ``external_identifier`` is the tag sent with the (new) order: resolve the outcome with
    ``TastytradeClient.find_order_by_external_id(account, external_identifier)``; for cancel and
    replace ``order_id`` is the order (or complex order) the request was about: check it with
    ``get_order`` / ``get_complex_order``. ``cause`` is a short description, ``status`` the HTTP
    status (0 if none was received). The raw response: ``body`` (at most :data:`MAX_RAW_BODY`
    bytes; ``body_size`` is the full length, ``body_truncated`` tells), ``headers`` (names
    lower-cased, repeated headers joined with ``", "``, values of credential-like headers
    replaced by ``<redacted>``, URLs without credentials or query).
    Strings passed as ``redact`` (the access token) are scrubbed from body, headers and cause.
    ``str()``/``repr()`` never include the body or a header.
    """

    def __init__(
        self,
        external_identifier: str | None,
        method: str,
        path: str,
        cause: str,
        status: int = 0,
        *,
        body: bytes | None = None,
        headers: Headers | None = None,
        order_id: int | None = None,
        redact: Iterable[str] = (),
    ) -> None:
        secrets = tuple(s for s in redact if s)
        cause = _scrub(cause, secrets)
        super().__init__(external_identifier, method, path, cause, status)
        self.external_identifier = external_identifier
        self.method = method
        self.path = path
        self.cause = cause
        self.status = status
        self.order_id = order_id
        raw = bytes(body or b"")
        self.body_size = len(raw)
        for s in secrets:  # before bounding: no prefix of a secret survives at the cut
            raw = raw.replace(s.encode(), _REDACTED.encode())
        self.body: bytes = raw[:MAX_RAW_BODY]
        self.headers: dict[str, str] = _safe_headers(headers, secrets)

    @property
    def body_truncated(self) -> bool:
        return self.body_size > len(self.body)

    def __str__(self) -> str:
        s = (
            f"outcome of {self.method} {self.path} is unknown ({self.cause}); not resent. "
            f"external-identifier={self.external_identifier!r}"
        )
        if self.order_id is not None:
            s += f" order-id={self.order_id}"
        return s

    def __repr__(self) -> str:
        return (
            f"OrderOutcomeUnknown(method={self.method!r}, path={self.path!r}, "
            f"status={self.status}, cause={self.cause!r}, "
            f"external_identifier={self.external_identifier!r}, order_id={self.order_id!r}, "
            f"body=<{self.body_size} bytes>)"
        )
