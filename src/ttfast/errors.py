"""ttfast's exception tree (one root, so callers can catch everything ttfast raises).

This module is a dependency-free leaf (stdlib only): the compiled core imports it to raise these
exceptions, so it must never import anything else from ttfast.
"""

from __future__ import annotations

__all__ = ["DecodeError", "TtfastError"]


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
