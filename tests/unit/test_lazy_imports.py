"""`import ttfast` for decoding, candles or indicators loads no network library.

The streamer (picows) and the REST client (aiohttp) are lazy attributes of ``ttfast`` (PEP 562
``__getattr__``), and ``ttfast.rest`` loads its session/client the same way, so order builders
and models need only msgspec. Each check runs in a fresh interpreter: this process has long
since imported everything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ttfast
import ttfast.rest

SRC = Path(__file__).resolve().parents[2] / "src" / "ttfast"
NETWORK = ("picows", "aiohttp", "redis")


_PRELUDE = f"""
import sys
def loaded():
    return sorted({{m.split(".")[0] for m in sys.modules}} & set({NETWORK!r}))
"""


def _fresh(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_import_ttfast_for_decoding_and_indicators_loads_no_network_library() -> None:
    out = _fresh(
        """
        import ttfast
        ttfast.FeedDecoder, ttfast.Macd, ttfast.CandleStore, ttfast.ApiError, ttfast.ema
        assert loaded() == [], loaded()
        from ttfast import DecodeError, Hma, normalize_candle_symbol  # noqa: F401
        assert loaded() == [], loaded()

        from ttfast.dxlink.streamer import DxLinkStreamer
        assert ttfast.DxLinkStreamer is DxLinkStreamer
        assert "picows" in loaded() and "aiohttp" not in loaded(), loaded()
        from ttfast.rest.client import TastytradeClient
        from ttfast.rest.session import FileTokenStore, OAuthSession
        assert ttfast.TastytradeClient is TastytradeClient
        assert ttfast.OAuthSession is OAuthSession and ttfast.FileTokenStore is FileTokenStore
        assert "redis" not in loaded(), loaded()
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_order_builders_and_models_need_no_aiohttp() -> None:
    out = _fresh(
        """
        from ttfast.rest import models, orders
        order = orders.limit_order(orders.leg("AAPL", 1, orders.OrderAction.BUY_TO_OPEN), "-1.5")
        models.convert({"account-number": "5WT0001"}, models.Account)
        assert loaded() == [], loaded()
        import ttfast.rest
        assert ttfast.rest.TastytradeClient.__module__ == "ttfast.rest.client"
        assert "aiohttp" in loaded()
        print(order.price_effect)
        """
    )
    assert out.strip() == "Debit"


@pytest.mark.parametrize("module", [ttfast, ttfast.rest], ids=lambda m: m.__name__)
def test_every_public_name_resolves_and_is_listed(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert len(set(names)) == len(names)
    listed = dir(module)
    for name in names:
        assert getattr(module, name) is not None, name
        assert name in listed, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"'ttfast' has no attribute 'Nope'"):
        ttfast.Nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"'ttfast\.rest' has no attribute 'Nope'"):
        ttfast.rest.Nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(ttfast, "auth") and not hasattr(ttfast, "models")


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    """name -> module of every ``from module import name`` under ``if TYPE_CHECKING:``."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                found.update((a.asname or a.name, stmt.module) for a in stmt.names)
    return found


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id == "_LAZY":
            return dict(ast.literal_eval(node.value))
    raise AssertionError("no _LAZY table")


@pytest.mark.parametrize("path", ["__init__.py", "rest/__init__.py"])
def test_lazy_names_are_visible_to_type_checkers(path: str) -> None:
    """Every lazy name is imported under TYPE_CHECKING too, from the module it loads from."""
    tree = ast.parse((SRC / path).read_text())
    assert _type_checking_imports(tree) == _lazy_table(tree)
