"""atheris fuzz target for ttfast._core.feed: mutated frames must never crash the decoder, and
must decode exactly like the pure-Python oracle (or both must reject them).

Run (sanitized build): tests/fuzz/run_fuzz.sh [seconds]. Directly:
    python tests/fuzz/fuzz_feed.py [libFuzzer flags, e.g. -runs=100000 -max_total_time=20]
Seed frames are written to a temporary corpus directory when none is given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from tests.oracles import feed as oracle


from ttfast._core.feed import FeedDecoder, message_type  # noqa: E402
from ttfast.errors import DecodeError  # noqa: E402

LAYOUTS = {
    "Quote": [
        "eventSymbol",
        "eventTime",
        "sequence",
        "timeNanoPart",
        "bidTime",
        "bidExchangeCode",
        "askTime",
        "askExchangeCode",
        "bidPrice",
        "askPrice",
        "bidSize",
        "askSize",
    ],
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
        "index",
    ],
    "Trade": ["eventSymbol", "price", "size", "time", "extendedTradingHours"],
    "Foo": ["eventSymbol", "x", "y"],
}

SEEDS = [
    b'{"type":"FEED_DATA","channel":1,"data":["Trade",["AMZN",201.5417,257.0,1748020169744,'
    b'false,"SPX",5931.91,"NaN",1748892788016,true]]}',
    b'{"type":"FEED_DATA","channel":3,"data":["Candle",[4,"AAPL{=d}",1750032000000,197.3,'
    b'198.685,196.5636,198.42,4.3020691E7,"NaN",7543222285683916800,10,"AAPL{=d}",926208000000,'
    b'"NaN","NaN","NaN","NaN","NaN","NaN",-1]]}',
    b'{"type":"FEED_DATA","channel":1,"data":["Quote",["SPY",0,0,0,1748020169040,"\\u0000",'
    b'1748020169043,"Z",868.84,868.88,2900.0,"Infinity"],"Foo",["a",1,"b\\ud83d\\ude00",'
    b'null,[1,{"k":2}],"-Infinity"]]}',
    b'{"channel":1,"data":[{"eventType":"Quote","eventSymbol":"SPY","bidPrice":1.5},'
    b'{"eventType":"Trade","price":"NaN","eventSymbol":"caf\xc3\xa9"}],"type":"FEED_DATA"}',
]


def canon(v: Any) -> Any:
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v)
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    return v


logging.getLogger("ttfast.feed").setLevel(logging.CRITICAL)  # bad groups are the point here
DECODERS: dict[str, tuple[FeedDecoder, oracle.OracleDecoder]] = {}
for _mode in ("raise", "skip"):
    DECODERS[_mode] = (FeedDecoder(on_error=_mode), oracle.OracleDecoder(on_error=_mode))
    for _t, _fields in LAYOUTS.items():
        DECODERS[_mode][0].set_fields(_t, _fields)
        DECODERS[_mode][1].set_fields(_t, _fields)


def TestOneInput(data: bytes) -> None:
    on_error = "skip" if data[-1:] in (b"]", b"}", b" ") else "raise"
    dec, orc = DECODERS[on_error]
    try:
        want: list[Any] | None = [
            (t, f, [{k: canon(v) for k, v in d.items()} for d in rows])
            for t, f, rows in orc.decode(data)
        ]
    except oracle.OracleError:
        want = None
    try:
        got: list[Any] | None = [
            (b.event_type, b.fields, [{k: canon(v) for k, v in d.items()} for d in b.to_dicts()])
            for b in dec.decode(data)
        ]
    except DecodeError:
        got = None
    with contextlib.suppress(DecodeError):
        message_type(data)
    if data.count(b"[") + data.count(b"{") > 200:
        return  # nesting limits differ (ttfast: 256 levels; json.loads: recursion limit)
    if want != got:
        raise AssertionError(f"ttfast and oracle disagree on {data!r}:\n{got!r}\n{want!r}")


def main() -> None:
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        corpus = tempfile.mkdtemp(prefix="ttfast-fuzz-feed-")
        for i, s in enumerate(SEEDS):
            Path(corpus, f"seed{i}").write_bytes(s)
        frames = ROOT / "tests" / "data" / "dxlink_frames"
        for p in sorted(frames.glob("*.json")):
            Path(corpus, p.name).write_bytes(p.read_bytes())
        args.append(corpus)
    dict_file = Path(__file__).with_name("feed.dict")
    if dict_file.exists() and not any(a.startswith("-dict=") for a in args):
        args.insert(1, f"-dict={dict_file}")
    atheris.Setup(args, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
