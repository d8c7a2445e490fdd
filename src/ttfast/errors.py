"""ttfast's exception tree (one root, so callers can catch everything ttfast raises).

This module is a dependency-free leaf (stdlib only): the compiled core imports it to raise these
exceptions, so it must never import anything else from ttfast.
"""

from __future__ import annotations

__all__ = [
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


# --- REST / OAuth errors (ttfast.auth, ttfast.rest, ttfast.orders) --------------------------------


class ApiError(TtfastError):
    """The tastytrade API answered with an error (non-2xx) or an unusable body.

    ``status`` is the HTTP status (0 when no response was received), ``code`` the machine-readable
    ``error.code`` (a string, or an int such as 406 for version errors; ``None`` if absent),
    ``message`` the human text, ``errors`` the nested ``error.errors[]`` entries as
    ``(code, message)`` pairs (``domain``/``reason`` entries are mapped onto the same pair) and
    ``path`` the request path (no query string, never a token). Branch on ``code``/``codes``,
    never on ``message``.
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
    """A 2xx response whose body was not valid JSON or did not fit the expected shape.

    ``raw`` holds the decoded JSON (``None`` if the body was not JSON at all).
    """

    raw: object = None


class OrderValidationError(TtfastError, ValueError):
    """An order violates a documented rule; raised by ttfast before anything is sent."""


class OrderOutcomeUnknown(TtfastError):
    """An order POST/PUT/DELETE may or may not have reached the exchange.

    Raised on timeout, lost connection, 5xx or 401 during an order mutation. ttfast NEVER resends
    such a request. ``external_identifier`` is the tag that was sent with the order: resolve the
    outcome with ``TastytradeClient.find_order_by_external_id(account, external_identifier)``.
    ``cause`` is a short description of what went wrong, ``status`` the HTTP status if any.
    """

    def __init__(
        self,
        external_identifier: str | None,
        method: str,
        path: str,
        cause: str,
        status: int = 0,
    ) -> None:
        super().__init__(external_identifier, method, path, cause, status)
        self.external_identifier = external_identifier
        self.method = method
        self.path = path
        self.cause = cause
        self.status = status

    def __str__(self) -> str:
        return (
            f"outcome of {self.method} {self.path} is unknown ({self.cause}); not resent. "
            f"external-identifier={self.external_identifier!r}"
        )
