"""The tastytrade REST API: OAuth session, typed async client, response models, order builders.

Modules: ``session`` (:class:`OAuthSession`, token lifecycle, one pooled aiohttp client),
``client`` (:class:`TastytradeClient`: accounts, orders, instruments, quote tokens), ``models``
(lenient msgspec response models) and ``orders`` (order builders + client-side validation).
Errors are in :mod:`ttfast.errors`.
"""

from __future__ import annotations

from ttfast.rest import models, orders
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
