"""The chart page's files: `index_html()` for ``GET /`` and `static_file(name)` for
``GET /static/{name}``.

They live in the package (``ttfast/edge/static/``, read with `importlib.resources`, so they
work from a wheel, a zip or an editable install): ``index.html``, ``chart.js``, ``style.css``
and TradingView Lightweight Charts™ 4.1.3 (``lightweight-charts.standalone.production.js``,
Apache-2.0, its LICENSE and NOTICE beside it). Nothing is fetched from elsewhere: the page
works offline.

Only the files of that folder with a known type are served, by their exact name (no paths,
no dot-files): any other name, ``../x`` included, is ``None``. Files are read once and kept.
Standard library only.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Final

__all__ = ["CONTENT_TYPES", "index_html", "static_file", "static_names"]

CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

_lock = threading.Lock()
_files: dict[str, tuple[bytes, str]] | None = None


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _load() -> dict[str, tuple[bytes, str]]:
    global _files
    files = _files
    if files is not None:
        return files
    with _lock:
        if _files is None:
            found: dict[str, tuple[bytes, str]] = {}
            for entry in resources.files("ttfast.edge").joinpath("static").iterdir():
                ctype = CONTENT_TYPES.get(_suffix(entry.name))
                if ctype is not None and not entry.name.startswith(".") and entry.is_file():
                    found[entry.name] = (entry.read_bytes(), ctype)
            _files = found
        return _files


def static_names() -> list[str]:
    """The names `static_file` serves, sorted."""
    return sorted(_load())


def static_file(name: str) -> tuple[bytes, str] | None:
    """``(bytes, content type)`` of ``static/<name>``, or ``None`` if there is no such file."""
    return _load().get(name)


def index_html() -> bytes:
    """The chart page (``static/index.html``, UTF-8); its links are relative (``static/...``,
    ``history/...``, ``ws``) so it also works behind a path prefix."""
    return _load()["index.html"][0]
