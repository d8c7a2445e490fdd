"""The tastytrade REST API: OAuth session, typed async client, response models, order builders.

Modules: ``session`` (:class:`OAuthSession`, token lifecycle, one pooled aiohttp client),
``client`` (:class:`TastytradeClient`: accounts, orders, instruments, quote tokens), ``models``
(lenient msgspec response models) and ``orders`` (order builders + client-side validation).
Errors are in :mod:`ttfast.errors`.

``models`` and ``orders`` need only msgspec; the session and client (aiohttp) load on first use,
so ``from ttfast.rest import orders`` builds and validates orders without importing aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttfast._util import lazy_exports
from ttfast.rest import models, orders

if TYPE_CHECKING:
    from ttfast.rest.client import QuoteTokenProvider, TastytradeClient, new_external_identifier
    from ttfast.rest.session import (
        DEFAULT_ACCEPT_VERSION,
        PRODUCTION_URL,
        SANDBOX_URL,
        AccessToken,
        FileTokenStore,
        OAuthSession,
        TokenStore,
    )

__all__ = [
    "DEFAULT_ACCEPT_VERSION",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AccessToken",
    "FileTokenStore",
    "OAuthSession",
    "QuoteTokenProvider",
    "TastytradeClient",
    "TokenStore",
    "models",
    "new_external_identifier",
    "orders",
]

_LAZY = {
    "DEFAULT_ACCEPT_VERSION": "ttfast.rest.session",
    "PRODUCTION_URL": "ttfast.rest.session",
    "SANDBOX_URL": "ttfast.rest.session",
    "AccessToken": "ttfast.rest.session",
    "FileTokenStore": "ttfast.rest.session",
    "OAuthSession": "ttfast.rest.session",
    "TokenStore": "ttfast.rest.session",
    "QuoteTokenProvider": "ttfast.rest.client",
    "TastytradeClient": "ttfast.rest.client",
    "new_external_identifier": "ttfast.rest.client",
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
