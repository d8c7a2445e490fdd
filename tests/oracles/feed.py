"""Pure-Python twin of ttfast._core.feed (json.loads + dicts): slow, obviously right.

Semantics (the contract the compiled decoder must match):
* the frame must be strict JSON (UTF-8; no bare NaN/Infinity literals), a JSON object with
  ``"type": "FEED_DATA"`` and an array ``data``; ``channel`` is its integer value or -1;
* ``data`` holds COMPACT groups (``"Type", [values...]``) and/or FULL event objects; a run of
  consecutive FULL objects of the same ``eventType`` is one batch;
* COMPACT layout = the server's FEED_CONFIG ``eventFields`` for the type, else the requested
  (set_fields) list; FULL fields = that layout (if any) + every other key, in first-seen order;
* column kinds from the spec field table (FIELD_KINDS; Summary.openInterest is int64); a value
  of the wrong JSON type for its column makes the group bad; unknown fields: all numbers /
  "NaN"/"Infinity"/"-Infinity" -> float64, otherwise an object column of json.loads values;
* FULL keys absent from an event: NaN / 0 / False / None by kind.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

FLOAT, INT, BOOL, OBJ, INFER = "float64", "int64", "bool", "object", "infer"

_D = (
    "bidPrice bidSize askPrice askSize price change size dayVolume dayTurnover dayOpenPrice "
    "dayHighPrice dayLowPrice dayClosePrice prevDayClosePrice prevDayVolume openInterest "
    "highLimitPrice lowLimitPrice high52WeekPrice low52WeekPrice beta earningsPerShare "
    "dividendFrequency exDividendAmount shares freeFloat volatility delta gamma theta rho "
    "vega underlyingPrice dividend interest frontVolatility backVolatility callVolume "
    "putVolume putCallRatio optionVolume forwardPrice open high low close volume vwap "
    "bidVolume askVolume impVolatility"
)
_L = (
    "eventTime eventFlags index time timeNanoPart sequence bidTime askTime dayId prevDayId "
    "haltStartTime haltEndTime exDividendDayId expiration count"
)
_B = "extendedTradingHours spreadLeg validTick"
_S = (
    "eventType eventSymbol bidExchangeCode askExchangeCode exchangeCode tickDirection "
    "dayClosePriceType prevDayClosePriceType description shortSaleRestriction tradingStatus "
    "statusReason exchangeSaleConditions tradeThroughExempt aggressorSide type buyer seller"
)

FIELD_KINDS: dict[str, str] = {
    **dict.fromkeys(_D.split(), FLOAT),
    **dict.fromkeys(_L.split(), INT),
    **dict.fromkeys(_B.split(), BOOL),
    **dict.fromkeys(_S.split(), OBJ),
}
TYPED_KINDS = {("Summary", "openInterest"): INT}
SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)\Z")
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def kind_of(event_type: str, field: str) -> str:
    return TYPED_KINDS.get((event_type, field)) or FIELD_KINDS.get(field, INFER)


class OracleError(Exception):
    def __init__(self, reason: str, syntax: bool = False) -> None:
        super().__init__(reason)
        self.syntax = syntax


class JInt(int):
    """An int that remembers its JSON token (float(token) for float64 columns)."""

    tok: str


def _jint(tok: str) -> JInt:
    v = JInt(int(tok))
    v.tok = tok
    return v


def _reject_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not JSON")


def loads(frame: bytes | bytearray | memoryview | str) -> Any:
    try:
        text = bytes(frame).decode("utf-8") if not isinstance(frame, str) else frame
        text.encode("utf-8")  # str input must be encodable (no lone surrogates)
        return json.loads(text, parse_int=_jint, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise OracleError(f"invalid JSON: {e}", syntax=True) from None


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _to_float(v: Any) -> float:
    return float(v.tok) if isinstance(v, JInt) else float(v)


def convert(kind: str, v: Any) -> Any:
    if kind == FLOAT:
        if _is_num(v):
            return _to_float(v)
        if isinstance(v, str) and v in SPECIAL:
            return SPECIAL[v]
        raise OracleError("bad float64 value")
    if kind == INT:
        if isinstance(v, str) and _INT_RE.match(v):
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool) and I64_MIN <= v <= I64_MAX:
            return int(v)
        raise OracleError("bad int64 value")
    if kind == BOOL:
        if isinstance(v, bool):
            return v
        raise OracleError("bad bool value")
    if kind == OBJ:
        if v is None or isinstance(v, str):
            return v
        raise OracleError("bad string value")
    return v  # INFER: decided per column


_MISSING = object()
_DEFAULT = {FLOAT: math.nan, INT: 0, BOOL: False, OBJ: None}


def _column(kind: str, raw: list[Any]) -> list[Any]:
    if kind != INFER:
        return [_DEFAULT[kind] if v is _MISSING else convert(kind, v) for v in raw]
    if all(v is _MISSING or _is_num(v) or (isinstance(v, str) and v in SPECIAL) for v in raw):
        return [
            math.nan if v is _MISSING else SPECIAL[v] if isinstance(v, str) else _to_float(v)
            for v in raw
        ]
    return [None if v is _MISSING else int(v) if isinstance(v, JInt) else v for v in raw]


Batch = tuple[str, tuple[str, ...], list[dict[str, Any]]]


class OracleDecoder:
    def __init__(self, on_error: str = "raise") -> None:
        self.on_error = on_error
        self.server: dict[str, list[str]] = {}
        self.requested: dict[str, list[str]] = {}
        self.bad_groups = 0
        self.bad_frames = 0
        self.last_channel = -1

    def set_fields(self, event_type: str, fields: list[str]) -> None:
        self.requested[event_type] = list(fields)

    def configure(self, msg: dict[str, Any]) -> None:
        for t, fields in (msg.get("eventFields") or {}).items():
            self.server[t] = list(fields)

    def layout(self, t: str) -> list[str] | None:
        return self.server.get(t, self.requested.get(t))

    def _bad(self, reason: str) -> None:
        if self.on_error != "skip":
            raise OracleError(reason)
        self.bad_groups += 1

    def _group(self, t: str, fields: list[str], rows: list[list[Any]]) -> Batch:
        cols = [_column(kind_of(t, f), [r[j] for r in rows]) for j, f in enumerate(fields)]
        return (
            t,
            tuple(fields),
            [dict(zip(fields, vals, strict=True)) for vals in zip(*cols, strict=True)]
            if cols
            else [{} for _ in rows],
        )

    def decode(self, frame: bytes | str) -> list[Batch]:
        try:
            msg = loads(frame)
        except OracleError:
            if self.on_error == "skip":
                self.bad_frames += 1
                return []
            raise
        if not isinstance(msg, dict):
            if self.on_error == "skip":
                self.bad_frames += 1
                return []
            raise OracleError("not a JSON object", syntax=True)
        if msg.get("type") != "FEED_DATA":
            raise OracleError("not a FEED_DATA message")
        data = msg.get("data", None)
        if "data" not in msg or not isinstance(data, list):
            raise OracleError("no data array")
        ch = msg.get("channel")
        channel = (
            int(ch)
            if (isinstance(ch, int) and not isinstance(ch, bool) and I64_MIN <= ch <= I64_MAX)
            else -1
        )
        out: list[Batch] = []
        run: list[dict[str, Any]] = []

        def flush() -> None:
            if not run:
                return
            t = run[0]["eventType"]
            fields = list(self.layout(t) or [])
            for obj in run:
                fields += [k for k in obj if k not in fields]
            try:
                rows = [[obj.get(f, _MISSING) for f in fields] for obj in run]
                for j, f in enumerate(fields):  # validate every value of the run
                    k = kind_of(t, f)
                    for r in rows:
                        if r[j] is not _MISSING:
                            convert(k, r[j])
                out.append(self._group(t, fields, rows))
            except OracleError as e:
                self._bad(str(e))
            run.clear()

        i = 0
        while i < len(data):
            el = data[i]
            if isinstance(el, dict):
                et = el.get("eventType")
                if not isinstance(et, str):
                    flush()
                    self._bad("FULL object without eventType")
                elif run and run[0]["eventType"] != et:
                    flush()
                    run.append(el)
                else:
                    run.append(el)
                i += 1
                continue
            flush()
            if isinstance(el, str):
                if i + 1 >= len(data):
                    self._bad("type name without values")
                    i += 1
                    continue
                vals = data[i + 1]
                i += 2
                if not isinstance(vals, list):
                    self._bad("type name not followed by an array")
                    continue
                fields = self.layout(el)
                if not fields:
                    self._bad(f"no layout for {el!r}")
                    continue
                n = len(fields)
                try:
                    for k, v in enumerate(vals):
                        convert(kind_of(el, fields[k % n]), v)
                    if len(vals) % n:
                        raise OracleError("value count not a multiple of the layout")
                    rows = [vals[k : k + n] for k in range(0, len(vals), n)]
                    out.append(self._group(el, fields, rows))
                except OracleError as e:
                    self._bad(str(e))
                continue
            self._bad("unexpected element")
            i += 1
        flush()
        self.last_channel = channel
        return out
