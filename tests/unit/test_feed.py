"""ttfast._core.feed (FEED_DATA decoder) against the spec examples and the pure-Python oracle."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.oracles import feed as oracle

import ttfast._core
from ttfast._core import feed
from ttfast._core.feed import EventBatch, FeedDecoder, field_kinds, message_type
from ttfast.errors import DecodeError, TtfastError

FRAMES = Path(__file__).resolve().parents[1] / "data" / "dxlink_frames"


def frame(name: str) -> bytes:
    return (FRAMES / name).read_bytes()


def norm(v: Any) -> Any:
    """Comparable form of a decoded value: NaN == NaN, and int/float/bool are kept apart."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v, math.copysign(1.0, v))
    if isinstance(v, list):
        return ("list", [norm(x) for x in v])
    if isinstance(v, dict):
        return ("dict", {k: norm(x) for k, x in v.items()})
    return (type(v).__name__, v)


def as_tuples(batches: list[EventBatch]) -> list[Any]:
    return [
        (b.event_type, b.fields, [{k: norm(v) for k, v in d.items()} for d in b.to_dicts()])
        for b in batches
    ]


def oracle_tuples(out: list[oracle.Batch]) -> list[Any]:
    return [(t, f, [{k: norm(v) for k, v in d.items()} for d in rows]) for t, f, rows in out]


# ---------------------------------------------------------------------------------------------
# Spec examples (dxlink.md §4.1, §6.5)


def test_spec_trade_example_ttdoc() -> None:
    dec = FeedDecoder()
    dec.set_fields("Trade", ["eventType", "eventSymbol", "price", "dayVolume", "size"])
    (b,) = dec.decode(frame("feed_data.trade_ttdoc.json"))
    assert dec.last_channel == 3
    assert b.event_type == "Trade" and len(b) == 2 and b.size == 2
    e1, e2 = b.to_dicts()
    assert e1 == {
        "eventType": "Trade",
        "eventSymbol": "SPY",
        "price": 559.36,
        "dayVolume": 13743299.0,
        "size": 100.0,
    }
    assert e2["eventSymbol"] == "BTC/USD:CXTALP" and e2["price"] == 58356.71
    assert math.isnan(e2["dayVolume"]) and math.isnan(e2["size"])
    assert b["dayVolume"].dtype == np.float64 and b["eventSymbol"].dtype == object


def test_spec_trade_example_qc() -> None:
    dec = FeedDecoder()
    dec.set_fields("Trade", ["eventSymbol", "price", "size", "time"])
    (b,) = dec.decode(frame("feed_data.trade_compact.json"))
    assert list(b["eventSymbol"]) == ["AMZN", "TSLA", "AAPL", "SPX", "./ESU25P900:XCME"]
    assert b["time"].dtype == np.int64
    assert b["time"].tolist() == [1748020169744, 1748020169011, 1748020168804, 1748892788016, 0]
    assert b["price"][:4].tolist() == [201.5417, 340.89, 196.1, 5931.91]
    assert math.isnan(b["price"][4]) and math.isnan(b["size"][3])
    assert b["size"][:3].tolist() == [257.0, 100.0, 200.0]


def test_spec_candle_example_qc() -> None:
    dec = FeedDecoder()
    dec.configure(
        {
            "type": "FEED_CONFIG",
            "channel": 1,
            "dataFormat": "COMPACT",
            "aggregationPeriod": 0.1,
            "eventFields": {
                "Candle": [
                    "eventFlags",
                    "eventSymbol",
                    "time",
                    "open",
                    "high",
                    "low",
                    "close",
                    "volume",
                    "openInterest",
                ]
            },
        }
    )
    (b,) = dec.decode(frame("feed_data.candle_compact.json"))
    assert len(b) == 3  # 27 values -> 3 candles
    assert b["eventFlags"].tolist() == [4, 0, 10] and b["eventFlags"].dtype == np.int64
    assert b["time"].tolist() == [1750032000000, 1749772800000, 926208000000]
    assert b["open"][:2].tolist() == [197.3, 199.73]
    assert b["volume"][:2].tolist() == [43020691.0, 51447349.0]
    assert all(math.isnan(x) for x in b["openInterest"])
    assert all(math.isnan(b[f][2]) for f in ("open", "high", "low", "close", "volume"))
    assert b["openInterest"].dtype == np.float64  # Candle.openInterest is a double


def test_spec_multi_group_frame() -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice", "askPrice"])
    dec.set_fields("Trade", ["eventSymbol", "price", "size"])
    f = (
        '{"type":"FEED_DATA","channel":1,"data":["Quote",["SPY",1.5,1.6,"QQQ",2,"NaN"],'
        '"Trade",["SPY",1.55,100.0],"Quote",["AAPL","Infinity","-Infinity"]]}'
    )
    bs = dec.decode(f)
    assert [(b.event_type, len(b)) for b in bs] == [("Quote", 2), ("Trade", 1), ("Quote", 1)]
    assert bs[0]["askPrice"][0] == 1.6 and math.isnan(bs[0]["askPrice"][1])
    assert bs[0]["bidPrice"][1] == 2.0 and bs[0]["bidPrice"].dtype == np.float64
    assert bs[2]["bidPrice"][0] == math.inf and bs[2]["askPrice"][0] == -math.inf
    assert dec.stats["events"] == 4 and dec.stats["groups"] == 3


def test_candle_index_beyond_2_pow_53_is_exact() -> None:
    dec = FeedDecoder()
    dec.set_fields("Candle", ["eventSymbol", "index", "time", "count"])
    idx = [7543222285683916800, 7235129486797176832, 2**63 - 1, -(2**63)]
    toks = ",".join(f'"QQQ{{=5m}}",{i},1756293300000,7' for i in idx)
    (b,) = dec.decode(f'{{"type":"FEED_DATA","channel":3,"data":["Candle",[{toks}]]}}')
    assert b["index"].dtype == np.int64 and b["index"].tolist() == idx
    assert b["count"].tolist() == [7] * 4


@pytest.mark.parametrize(
    "tok",
    [
        "1.3743299E7",
        "100.0",
        "1.0E-4",
        "4.3020691E7",
        "559.36",
        "123",
        "-0.0",
        "1E400",
        "-1e-400",
        "5e-324",
        "9007199254740993",
        "123456789012345678901234567890",
        "0.30000000000000004",
        "2.2250738585072014E-308",
    ],
)
def test_java_number_tokens_round_trip(tok: str) -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["bidPrice"])
    (b,) = dec.decode(f'{{"type":"FEED_DATA","channel":1,"data":["Quote",[{tok}]]}}')
    got = b["bidPrice"][0]
    assert got == float(tok) and math.copysign(1, got) == math.copysign(1, float(tok))


def test_strings_chars_enums_bools_nulls() -> None:
    dec = FeedDecoder()
    fields = [
        "eventSymbol",
        "bidExchangeCode",
        "tickDirection",
        "extendedTradingHours",
        "exchangeSaleConditions",
        "description",
    ]
    dec.set_fields("TimeAndSale", fields)
    f = (
        '{"type":"FEED_DATA","channel":5,"data":["TimeAndSale",['
        r'"/ESU24:XCME","\u0000","UP",true,null,"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n",'
        '".SPXW240119P4975","","ZERO_DOWN",false,"ABC","naïve 😀"]]}'
    )
    (b,) = dec.decode(f.encode())
    d1, d2 = b.to_dicts()
    assert d1["bidExchangeCode"] == "\x00" and d2["bidExchangeCode"] == ""
    assert d1["tickDirection"] == "UP" and d1["extendedTradingHours"] is True
    assert d1["exchangeSaleConditions"] is None and d2["exchangeSaleConditions"] == "ABC"
    assert d1["description"] == 'café 😀 "q" \\ / \n' and d2["description"] == "naïve 😀"
    assert b["extendedTradingHours"].dtype == np.bool_
    assert b.column("eventSymbol") is b.column("eventSymbol")  # cached


def test_lone_surrogate_escape_kept_like_json_loads() -> None:
    dec = FeedDecoder()
    dec.set_fields("X", ["s"])
    (b,) = dec.decode(r'{"type":"FEED_DATA","data":["X",["\ud800x"]]}')
    assert b["s"][0] == json.loads(r'"\ud800x"')


def test_unknown_fields_inferred_per_group() -> None:
    dec = FeedDecoder()
    dec.set_fields("Foo", ["num", "mixed", "nan"])
    (b,) = dec.decode(
        '{"type":"FEED_DATA","data":["Foo",[1,"a","NaN",2.5,3,"Infinity",'
        '7543222285683916800,null,"-Infinity"]]}'
    )
    assert b["num"].dtype == np.float64 and b["num"].tolist() == [1.0, 2.5, 7543222285683916800]
    assert b["mixed"].dtype == object and b["mixed"].tolist() == ["a", 3, None]
    assert b["nan"].dtype == np.float64 and b["nan"][1] == math.inf


def test_quoted_integer_in_int64_column_accepted() -> None:
    # Whether dxLink ever quotes longs is UNVERIFIED (spec §4.3); both forms decode.
    dec = FeedDecoder()
    dec.set_fields("Candle", ["index", "time"])
    (b,) = dec.decode('{"type":"FEED_DATA","data":["Candle",["7543222285683916800",1]]}')
    assert b["index"].tolist() == [7543222285683916800]


# ---------------------------------------------------------------------------------------------
# Layout management (FEED_CONFIG merge, requested fallback)


def test_configure_merges_event_fields() -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice", "askPrice", "VWAP"])
    dec.configure(
        b'{"type":"FEED_CONFIG","channel":1,"dataFormat":"COMPACT","aggregationPeriod":0.1}'
    )
    assert dec.layouts == {"Quote": ("eventSymbol", "bidPrice", "askPrice", "VWAP")}
    assert dec.data_format == "COMPACT" and dec.aggregation_period == 0.1
    dec.configure(
        '{"type":"FEED_CONFIG","channel":1,"eventFields":'
        '{"Quote":["eventSymbol","bidPrice","askPrice"]}}'
    )
    dec.configure({"type": "FEED_CONFIG", "eventFields": {"Trade": ["eventSymbol", "price"]}})
    assert dec.layouts == {
        "Quote": ("eventSymbol", "bidPrice", "askPrice"),
        "Trade": ("eventSymbol", "price"),
    }
    # a later set_fields does not override what the server announced
    dec.set_fields("Quote", ["eventSymbol"])
    assert dec.layouts["Quote"] == ("eventSymbol", "bidPrice", "askPrice")
    dec.reset()
    assert dec.layouts == {"Quote": ("eventSymbol",)}


def test_configure_rejects_garbage() -> None:
    dec = FeedDecoder()
    with pytest.raises(DecodeError):
        dec.configure(b"{not json")
    with pytest.raises(DecodeError):
        dec.configure({"type": "FEED_DATA"})
    with pytest.raises(DecodeError):
        dec.configure({"type": "FEED_CONFIG", "eventFields": {"Quote": "bidPrice"}})


def test_field_kind_table() -> None:
    k = field_kinds()
    assert k["bidPrice"] == "float64" and k["index"] == "int64" and k["eventFlags"] == "int64"
    assert k["validTick"] == "bool" and k["tradeThroughExempt"] == "object"
    assert k["openInterest"] == "float64" and field_kinds("Summary")["openInterest"] == "int64"
    assert "VWAP" not in k
    for name, kind in oracle.FIELD_KINDS.items():  # the oracle's own copy of the spec table
        assert k[name] == kind, name


# ---------------------------------------------------------------------------------------------
# Input forms, channel, message_type, EventBatch API


@pytest.mark.parametrize("conv", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_input_forms(conv: Any) -> None:
    dec = FeedDecoder()
    dec.set_fields("Trade", ["eventSymbol", "price", "size", "time"])
    ch, (b,) = dec.decode_message(conv(frame("feed_data.trade_compact.json")))
    assert ch == 1 and dec.last_channel == 1 and len(b) == 5


def test_mutable_buffer_is_copied() -> None:
    dec = FeedDecoder()
    dec.set_fields("X", ["s"])
    buf = bytearray(b'{"type":"FEED_DATA","data":["X",["AAA"]]}')
    (b,) = dec.decode(memoryview(buf))
    buf[:] = b"\x00" * len(buf)
    assert b["s"][0] == "AAA"


def test_message_type() -> None:
    assert message_type(b'{"type":"FEED_DATA","channel":1,"data":[]}') == "FEED_DATA"
    assert message_type('{"channel":0, "x":[{"type":"no"}], "type":"KEEPALIVE"}') == "KEEPALIVE"
    assert message_type(b' {"type" : "NEW_THING"}') == "NEW_THING"
    for bad in (b"[]", b'{"channel":0}', b'{"type":1}', b""):
        with pytest.raises(DecodeError):
            message_type(bad)


def test_batch_api() -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice"])
    (b,) = dec.decode('{"type":"FEED_DATA","channel":1,"data":["Quote",["A",1.0,"B",2.0]]}')
    assert isinstance(b, EventBatch) and b.fields == ("eventSymbol", "bidPrice")
    assert b.column("askPrice") is None and "bidPrice" in b and "askPrice" not in b
    with pytest.raises(KeyError):
        b["askPrice"]
    cols = b.columns
    assert list(cols) == ["eventSymbol", "bidPrice"] and cols["bidPrice"].flags.c_contiguous
    assert "Quote" in repr(b)


def test_columns_share_one_block_per_dtype_family_and_outlive_the_batch() -> None:
    """Numeric columns are views on one block per batch, object columns on another; each is a
    real C-contiguous 1-D array of `size` items, cached, and valid after the batch is gone."""
    import gc
    import sys

    dec = FeedDecoder()
    fields = ["eventSymbol", "time", "bidPrice", "flag", "bidExchangeCode", "index", "askPrice"]
    dec.set_fields("X", fields)
    rows = [
        [f"S{i}", 1000 + i, i + 0.5, i % 2 == 0, "Q" if i % 3 else None, -i, 2.0 * i]
        for i in range(7)
    ]
    flat = [v for r in rows for v in r]
    data = json.dumps({"type": "FEED_DATA", "data": ["X", flat]}).replace(" ", "")
    (b,) = dec.decode(data)
    cols = {f: b.column(f) for f in fields}
    assert all(b.column(f) is cols[f] for f in fields)
    want = {
        "time": np.int64,
        "bidPrice": np.float64,
        "askPrice": np.float64,
        "index": np.int64,
        "eventSymbol": object,
        "bidExchangeCode": object,
    }
    for f, c in cols.items():
        assert type(c) is np.ndarray and c.ndim == 1 and len(c) == 7 and c.flags.c_contiguous
        assert c.flags.aligned and c.flags.writeable
        if f in want:
            assert c.dtype == np.dtype(want[f])
    assert cols["flag"].dtype == np.dtype(object)  # unknown field holding bools: object column
    num = [cols[f] for f in ("time", "bidPrice", "index", "askPrice")]
    assert len({id(c.base) for c in num}) == 1 and not num[0].flags.owndata
    assert cols["eventSymbol"].base is cols["bidExchangeCode"].base
    assert cols["eventSymbol"].base is not num[0].base
    for c1 in num:  # no overlap between columns of the shared block
        for c2 in num:
            assert c1 is c2 or not np.shares_memory(c1, c2)
    sym = cols.pop("eventSymbol")
    price = cols.pop("bidPrice")
    del b, cols, num
    gc.collect()
    assert sym.tolist() == [r[0] for r in rows]
    assert price.tolist() == [r[2] for r in rows]
    s0 = sym[0]
    rc = sys.getrefcount(s0)
    del sym
    gc.collect()
    assert sys.getrefcount(s0) == rc - 1  # the object block released its references


def test_empty_group_columns() -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice", "bidTime"])
    (b,) = dec.decode('{"type":"FEED_DATA","data":["Quote",[]]}')
    assert len(b) == 0
    for f, dt in (("eventSymbol", object), ("bidPrice", np.float64), ("bidTime", np.int64)):
        c = b.column(f)
        assert c.shape == (0,) and c.dtype == np.dtype(dt) and c.flags.c_contiguous


def test_full_format() -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice", "askPrice"])
    f = (
        '{"type":"FEED_DATA","channel":1,"data":['
        '{"eventType":"Quote","eventSymbol":"SPY","bidPrice":1.5,"askPrice":"NaN"},'
        '{"eventType":"Quote","askPrice":2,"eventSymbol":"QQQ"},'
        '{"eventType":"Trade","eventSymbol":"SPY","price":3.25,"size":100.0,"x":[1]}]}'
    )
    b1, b2 = dec.decode(f)
    assert b1.fields == ("eventSymbol", "bidPrice", "askPrice", "eventType")
    assert b1["eventSymbol"].tolist() == ["SPY", "QQQ"] and math.isnan(b1["bidPrice"][1])
    assert b2.event_type == "Trade" and b2.to_dicts() == [
        {"eventType": "Trade", "eventSymbol": "SPY", "price": 3.25, "size": 100.0, "x": [1]}
    ]


def test_absent_values_per_kind() -> None:
    """A key missing from a FULL event reads as NaN (float64), 0 (int64), False (bool) and None
    (object); in columns and in to_dicts alike. Unknown fields: NaN in a numeric column, None
    in an object one. JSON null in a string column reads as None too."""
    dec = FeedDecoder()
    dec.set_fields(
        "Trade", ["eventSymbol", "price", "dayId", "extendedTradingHours", "exchangeCode"]
    )
    f = (
        '{"type":"FEED_DATA","channel":1,"data":['
        '{"eventType":"Trade","eventSymbol":"A","price":1.5,"dayId":7,'
        '"extendedTradingHours":true,"exchangeCode":"Q","xnum":2,"xstr":"s"},'
        '{"eventType":"Trade","eventSymbol":null}]}'
    )
    (b,) = dec.decode(f)
    dtypes = {k: str(b[k].dtype) for k in b.fields}
    assert dtypes == {
        "eventSymbol": "object",
        "price": "float64",
        "dayId": "int64",
        "extendedTradingHours": "bool",
        "exchangeCode": "object",
        "eventType": "object",
        "xnum": "float64",
        "xstr": "object",
    }
    want = {
        "eventSymbol": None,
        "price": math.nan,
        "dayId": 0,
        "extendedTradingHours": False,
        "exchangeCode": None,
        "eventType": "Trade",
        "xnum": math.nan,
        "xstr": None,
    }
    from_columns = {k: b[k].tolist()[1] for k in b.fields}
    for got in (from_columns, b.to_dicts()[1]):
        assert {k: norm(v) for k, v in got.items()} == {k: norm(v) for k, v in want.items()}


def test_event_flag_bits() -> None:
    """The eventFlags bits (spec dxlink.md §6.3): defined once (common.pxd), exported here."""
    bits = (
        feed.TX_PENDING,
        feed.REMOVE_EVENT,
        feed.SNAPSHOT_BEGIN,
        feed.SNAPSHOT_END,
        feed.SNAPSHOT_SNIP,
        feed.SNAPSHOT_MODE,
    )
    assert bits == (0x01, 0x02, 0x04, 0x08, 0x10, 0x40)
    assert ttfast._core.SNAPSHOT_END == feed.SNAPSHOT_END
    assert set(feed.__all__) >= {"TX_PENDING", "SNAPSHOT_MODE", "FeedDecoder"}


# ---------------------------------------------------------------------------------------------
# Bad input: DecodeError with offset/reason, or skip the group and count it


BAD_GROUP_CASES = [
    ('["Quote",["A",1.0,"B"]]', "not a multiple"),
    ('["Nope",[1,2,3]]', "no layout"),
    ('["Quote",["A",true]]', "bool"),
    ('["Quote",["A","1.5"]]', "string in a float64"),
    ('["Quote",[1,1.0]]', "number in a string"),
    ('["Quote"]', "without a value array"),
    ("[17]", "unexpected element"),
]


@pytest.mark.parametrize(("data", "why"), BAD_GROUP_CASES)
def test_bad_group_raises_with_offset(data: str, why: str) -> None:
    dec = FeedDecoder()
    dec.set_fields("Quote", ["eventSymbol", "bidPrice"])
    f = '{"type":"FEED_DATA","channel":1,"data":' + data + "}"
    with pytest.raises(DecodeError) as ei:
        dec.decode(f)
    assert why in ei.value.reason and 0 < ei.value.offset < len(f)
    assert isinstance(ei.value, TtfastError) and isinstance(ei.value, ValueError)


@pytest.mark.parametrize(("data", "why"), [c for c in BAD_GROUP_CASES if c[0] != '["Quote"]'])
def test_bad_group_skipped_good_groups_kept(data: str, why: str) -> None:
    dec = FeedDecoder(on_error="skip")
    dec.set_fields("Quote", ["eventSymbol", "bidPrice"])
    inner = data[1:-1]
    f = (
        '{"type":"FEED_DATA","channel":1,"data":["Quote",["A",1.0],'
        + inner
        + ',"Quote",["B",2.0]]}'
    )
    bs = dec.decode(f)
    assert [b["eventSymbol"][0] for b in bs] == ["A", "B"]
    assert dec.stats["bad_groups"] == 1 and why in dec.last_error.reason


@pytest.mark.parametrize(
    "f",
    [
        b"",
        b"{",
        b'{"type":"FEED_DATA","data":[}',
        b"[1]",
        b'{"type":"FEED_DATA","data":["Quote",[NaN]]}',
        b'{"type":"FEED_DATA","data":[]} x',
        b'\xff{"type":1}',
        b'{"type":"FEED_DATA","data":["Q\x01"]}',
        b'{"type":"FEED_DATA","data":["\xed\xa0\x80"]}',
    ],
)
def test_invalid_json(f: bytes) -> None:
    dec = FeedDecoder()
    with pytest.raises(DecodeError, match="invalid JSON"):
        dec.decode(f)
    skip = FeedDecoder(on_error="skip")
    assert skip.decode(f) == [] and skip.stats["bad_frames"] == 1


@pytest.mark.parametrize(
    "f",
    [
        '{"type":"FEED_CONFIG","channel":1}',
        '{"channel":1,"data":[]}',
        '{"type":"FEED_DATA","channel":1}',
        '{"type":"FEED_DATA","data":{}}',
    ],
)
def test_not_feed_data(f: str) -> None:
    with pytest.raises(DecodeError):
        FeedDecoder(on_error="skip").decode(f)


def test_bad_input_types() -> None:
    with pytest.raises(TypeError):
        FeedDecoder().decode(123)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        FeedDecoder().decode("\ud800")
    with pytest.raises(ValueError):
        FeedDecoder(on_error="ignore")


# ---------------------------------------------------------------------------------------------
# Property tests against the oracle

EVENT_TYPES = ["Quote", "Trade", "Candle", "Summary", "TimeAndSale", "Foo"]
FIELD_NAMES = [*oracle.FIELD_KINDS, "VWAP", "foo", "bar\u00e9", "x"]
I64 = st.integers(oracle.I64_MIN, oracle.I64_MAX)


def java_or_repr(x: float, java: bool) -> str:
    from bench.datagen import java_double

    return java_double(x) if java else json.dumps(x)


@st.composite
def json_string(draw: st.DrawFn) -> str:
    s = draw(
        st.one_of(
            st.sampled_from(["SPY", "AAPL{=5m}", "\x00", "", "NaN", "Q"]), st.text(max_size=12)
        )
    )
    return json.dumps(s, ensure_ascii=draw(st.booleans()))


@st.composite
def token(draw: st.DrawFn, kind: str) -> str:
    if kind == oracle.FLOAT or (kind == oracle.INFER and draw(st.booleans())):
        return draw(
            st.one_of(
                st.builds(
                    java_or_repr, st.floats(allow_nan=False, allow_infinity=False), st.booleans()
                ),
                st.sampled_from(['"NaN"', '"Infinity"', '"-Infinity"', "0", "-0", "1e400"]),
                st.integers(-(10**25), 10**25).map(str),
            )
        )
    if kind == oracle.INT:
        return draw(st.one_of(I64.map(str), I64.map(lambda i: f'"{i}"')))
    if kind == oracle.BOOL:
        return draw(st.sampled_from(["true", "false"]))
    if kind == oracle.OBJ:
        return draw(st.one_of(st.just("null"), json_string()))
    return draw(
        st.one_of(
            json_string(), st.sampled_from(["null", "true", "[1,[2]]", '{"a":1}']), I64.map(str)
        )
    )


WS = st.sampled_from(["", "", " ", "\n", " \t", "\r\n  "])


@st.composite
def feed_frame(draw: st.DrawFn) -> tuple[dict[str, list[str]], str]:
    """(layouts, frame text): 1-3 groups of random layouts and values, COMPACT or FULL."""
    types = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=3))
    layouts = {
        t: draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=6, unique=True))
        for t in set(types)
    }
    full = draw(st.booleans()) and draw(st.booleans())
    corrupt = draw(st.integers(0, 9)) == 0
    w = lambda: draw(WS)  # noqa: E731
    parts = []
    for t in types:
        fields = layouts[t]
        n = draw(st.integers(0 if not full else 1, 4))
        rows = [[draw(token(oracle.kind_of(t, f))) for f in fields] for _ in range(n)]
        if corrupt and rows:  # a token of another kind: usually a bad group
            rows[0][draw(st.integers(0, len(fields) - 1))] = draw(
                token(draw(st.sampled_from([oracle.FLOAT, oracle.INT, oracle.BOOL, oracle.OBJ])))
            )
        if full:
            for r in rows:
                items = [f'"eventType"{w()}:{w()}{json.dumps(t)}']
                keep = [j for j in range(len(fields)) if draw(st.booleans())]
                items += [f"{json.dumps(fields[j])}{w()}:{w()}{r[j]}" for j in keep]
                parts.append("{" + w() + ("," + w()).join(items) + w() + "}")
        else:
            vals = [v for r in rows for v in r]
            if corrupt and draw(st.booleans()):
                vals = vals[:-1]
            parts.append(
                json.dumps(t)
                + w()
                + ","
                + w()
                + "["
                + w()
                + (w() + "," + w()).join(vals)
                + w()
                + "]"
            )
    data = "[" + w() + (w() + "," + w()).join(parts) + w() + "]"
    head = [
        f'"type"{w()}:{w()}"FEED_DATA"',
        f'"channel"{w()}:{w()}{draw(I64)}',
        f'"data"{w()}:{w()}{data}',
    ]
    order = draw(st.permutations(head))
    return layouts, w() + "{" + w() + ("," + w()).join(order) + w() + "}" + w()


def run_both(
    layouts: dict[str, list[str]], f: bytes | str, on_error: str, via_config: bool
) -> None:
    dec = FeedDecoder(on_error=on_error)
    orc = oracle.OracleDecoder(on_error=on_error)
    if via_config:
        dec.configure({"type": "FEED_CONFIG", "eventFields": layouts})
        orc.configure({"eventFields": layouts})
    else:
        for t, fl in layouts.items():
            dec.set_fields(t, fl)
            orc.set_fields(t, fl)
    try:
        want = orc.decode(f)
    except oracle.OracleError:
        with pytest.raises(DecodeError):
            dec.decode(f)
        return
    got = dec.decode(f)
    assert as_tuples(got) == oracle_tuples(want)
    if want or orc.bad_groups:
        assert dec.last_channel == orc.last_channel
    assert dec.stats["bad_frames"] == orc.bad_frames
    for b in got:
        # to_dicts reads the parsed values directly; the columns are the other path to them
        cols = {name: b.column(name).tolist() for name in b.fields}
        via_cols = [{f: norm(cols[f][i]) for f in b.fields} for i in range(len(b))]
        assert [{k: norm(v) for k, v in d.items()} for d in b.to_dicts()] == via_cols
        for name in b.fields:
            kind = oracle.kind_of(b.event_type, name)
            col = b.column(name)
            assert col.ndim == 1 and col.flags.c_contiguous and len(col) == len(b)
            if kind != oracle.INFER:
                assert col.dtype == np.dtype(kind)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feed_frame(), st.sampled_from(["raise", "skip"]), st.booleans(), st.booleans())
def test_property_matches_oracle(
    case: tuple[dict[str, list[str]], str], on_error: str, as_bytes: bool, via_config: bool
) -> None:
    layouts, text = case
    run_both(
        layouts, text.encode("utf-8", "surrogatepass") if as_bytes else text, on_error, via_config
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feed_frame(), st.data(), st.sampled_from(["raise", "skip"]))
def test_property_mutated_frames_match_oracle(
    case: tuple[dict[str, list[str]], str], data: st.DataObject, on_error: str
) -> None:
    layouts, text = case
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    assume(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["del", "ins", "rep"]))
        byte = data.draw(st.sampled_from(b'",[]{}:01-.eE\\ntu \x00\xc3\xa9\xff'))
        if op == "del":
            del raw[pos]
        elif op == "ins":
            raw.insert(pos, byte)
        else:
            raw[pos] = byte
        if not raw:
            break
    run_both(layouts, bytes(raw), on_error, False)


def test_full_format_repeated_key_last_wins() -> None:
    # found by the fuzzer: json.loads keeps the last value of a repeated key
    dec = FeedDecoder()
    f = (
        '{"type":"FEED_DATA","data":[{"eventType":"Trade","price":"bad","price":"NaN"},'
        '{"eventType":"Trade","price":1.5,"price":2.5}]}'
    )
    (b,) = dec.decode(f)
    assert math.isnan(b["price"][0]) and b["price"][1] == 2.5
    with pytest.raises(DecodeError, match="price"):
        dec.decode('{"type":"FEED_DATA","data":[{"eventType":"Trade","price":1,"price":"x"}]}')


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("value", ["1" + "0" * 4300, "-1" + "0" * 4300, "[1" + "0" * 4300 + "]"])
def test_integer_too_long_for_python_is_a_decode_error(on_error: str, value: str) -> None:
    """Found by the soak run: an integer token of more than sys.get_int_max_str_digits() digits
    in an unknown-field column (or nested in a raw value) decoded fine, then reading the batch
    raised a plain ValueError. It is rejected while decoding (skip mode drops only its group)."""
    dec = FeedDecoder(on_error=on_error)  # type: ignore[arg-type]
    dec.set_fields("Foo", ["eventSymbol", "x"])
    dec.set_fields("Quote", ["eventSymbol", "bidPrice"])
    frame = (
        '{"type":"FEED_DATA","channel":1,"data":["Foo",["a",' + value + ',"b",null],'
        '"Quote",["SPY",1.5]]}'
    ).encode()
    if on_error == "raise":
        with pytest.raises(DecodeError, match="more digits"):
            dec.decode(frame)
        return
    batches = dec.decode(frame)
    assert [b.event_type for b in batches] == ["Quote"]
    assert batches[0].to_dicts()[0]["bidPrice"] == 1.5
    # 4300 digits exactly still converts (an object column: the None makes it one)
    ok = dec.decode(
        b'{"type":"FEED_DATA","channel":1,"data":["Foo",["a",1' + b"0" * 4299 + b',"b",null]]}'
    )
    assert ok[0].column("x")[0] == 10**4299
