"""Small helpers shared across ttfast (errors, REST, sinks, worker).

Stdlib only and imports nothing from ttfast: ``ttfast.errors`` (imported by the compiled core)
depends on it. ``redact_url`` keeps both policies ttfast had (URLs we were configured with, URLs
a server sent us) in one parser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["redact_url"]

_REDACTED = "<redacted>"


def redact_url(url: str, *, from_peer: bool = False) -> str:
    """``url`` without secrets, safe for logs and messages (never raises). Fragment dropped.

    Default (a URL we were configured with, e.g. ``redis://user:pw@host:6379/0?...``): the
    username stays, a password becomes ``***``, the query is dropped (it may carry tokens);
    unparseable → ``<unparseable url>``.

    ``from_peer=True`` (a URL a server sent, e.g. a redirect's ``Location``, where any userinfo
    may be a credential): userinfo is dropped entirely, a dropped query is marked ``?<redacted>``;
    unparseable → ``<redacted>``.
    """
    try:
        u = urlsplit(url.strip())
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return _REDACTED if from_peer else "<unparseable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    query = ""
    if from_peer:
        query = "?" + _REDACTED if u.query else ""
    elif u.username:
        netloc = f"{u.username}:***@{netloc}" if u.password else f"{u.username}@{netloc}"
    elif u.password:
        netloc = f":***@{netloc}"
    head = (f"{u.scheme}:" if u.scheme else "") + (f"//{netloc}" if u.scheme or netloc else "")
    return head + u.path + query
