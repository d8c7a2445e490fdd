"""Small helpers shared across ttfast (errors, REST, sinks, worker, package ``__init__``s).

Stdlib only and imports nothing from ttfast: ``ttfast.errors`` (imported by the compiled core)
depends on it. ``redact_url`` keeps both policies ttfast had (URLs we were configured with, URLs
a server sent us) in one parser.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["lazy_exports", "redact_url"]

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
        hosts = u.netloc.rpartition("@")[2]
        if "," in hosts:  # several nodes (redis+cluster://h:p,h:p): hosts are not secrets
            netloc = hosts
        else:
            host = u.hostname or ""
            port = u.port
            if ":" in host:
                host = f"[{host}]"
            netloc = host + (f":{port}" if port is not None else "")
    except ValueError:
        return _REDACTED if from_peer else "<unparseable url>"
    query = ""
    if from_peer:
        query = "?" + _REDACTED if u.query else ""
    elif u.username:
        netloc = f"{u.username}:***@{netloc}" if u.password else f"{u.username}@{netloc}"
    elif u.password:
        netloc = f":***@{netloc}"
    head = (f"{u.scheme}:" if u.scheme else "") + (f"//{netloc}" if u.scheme or netloc else "")
    return head + u.path + query


def lazy_exports(
    module: str, namespace: dict[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` (PEP 562) for a package whose heavy names load on use.

    ``lazy`` maps a public name to the module that defines it; the first access imports that
    module and stores the value in ``namespace`` (the package's ``globals()``), so later
    accesses are plain global lookups. Define the pair under ``if not TYPE_CHECKING`` and import
    the same names under ``if TYPE_CHECKING``: type checkers then see real names, not ``Any``.
    """

    def __getattr__(name: str) -> Any:
        source = lazy.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.keys() | lazy.keys())

    return __getattr__, __dir__
