"""Pure-Python twin of ttfast.rest.models.convert / convert_list (obviously right, slow).

Each item is converted on its own with ``msgspec.convert``; then a plain recursive walk sets
``.raw`` on every model, nested ones included, pairing each model with the JSON object it came
from (lists element by element). Models whose raw holds a secret get a copy with a hidden repr.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ttfast.rest import models as m


def attach(obj: Any, raw: Any) -> None:
    if isinstance(obj, list):
        if isinstance(raw, list):
            for o, r in zip(obj, raw, strict=False):
                attach(o, r)
        return
    if not isinstance(obj, m.ApiModel) or not isinstance(raw, dict):
        return
    obj.raw = m.RawDict(raw) if isinstance(obj, m.QuoteToken) else raw
    for f in msgspec.structs.fields(obj):
        if f.name != "raw":
            attach(getattr(obj, f.name), raw.get(f.encode_name))
            val = getattr(obj, f.name)
            if isinstance(val, dict) and isinstance(raw.get(f.encode_name), dict):
                for k, v in val.items():
                    attach(v, raw[f.encode_name].get(k))


def convert(raw: Any, model: type[Any]) -> Any:
    obj = msgspec.convert(raw, model, strict=False)
    attach(obj, raw)
    return obj


def convert_list(raws: list[Any], model: type[Any]) -> list[Any]:
    return [convert(r, model) for r in raws]
