"""Part (a): mutated FEED_DATA frames through FeedDecoder in both on_error modes.

The mutator is pure Python and seeded (no atheris): realistic COMPACT frames (bench/datagen.py:
Quote, live and snapshot Candle, Trade, multi-type; the spec's example frames and the fuzz
target's seeds) get 1-5 stacked mutations: bit flips, interesting bytes, truncation, insertion
(dictionary tokens, random bytes), deletion, duplication, splicing of two frames, number and
string token replacement (huge and edge-case numbers, escapes, bad UTF-8), deep nesting,
structural edits and whitespace. Frame k of chunk c is a pure function of (seed, c, k), so a
crashing chunk can be replayed frame by frame.

The decoding runs in a child process (``python -m bench.soak.fuzz --child ...``): a crash is
seen by the parent as a signal, the crashing chunk is replayed with every frame written to a
file first, and the run continues after it. Invariants: no exception other than DecodeError,
no crash, no hang, the oracle sample agrees, RSS does not grow after the warm-up.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 1000
ORACLE_EVERY = 97  # ~1% of frames are also decoded by the pure-Python oracle
# a JSON integer token of more digits than CPython int() converts by default (4300)
_LONG_INT = re.compile(rb"(?<![0-9.eE+-])-?[0-9]{4301,}(?![0-9.eE])")
# allowed RSS growth from the warm-up to the end, measured after malloc_trim (common.py)
RSS_LIMIT_KIB = 2 * 1024

# ---------------------------------------------------------------------------------------------
# seed frames


TRADE_FIELDS = (
    "eventSymbol",
    "eventTime",
    "time",
    "sequence",
    "exchangeCode",
    "price",
    "change",
    "size",
    "dayVolume",
    "tickDirection",
    "extendedTradingHours",
)


def _feed_data(channel: int, groups: list[tuple[str, list[str]]]) -> bytes:
    parts = [f'"{t}",[{",".join(toks)}]' for t, toks in groups]
    return f'{{"type":"FEED_DATA","channel":{channel},"data":[{",".join(parts)}]}}'.encode()


def _trade_groups(r: random.Random, n: int) -> list[str]:
    from bench import datagen

    toks: list[str] = []
    t = 1_748_020_169_000
    for _ in range(n):
        sym = r.choice(["SPY", "QQQ", "AAPL", "/ESU25:XCME", ".SPXW250620C5900", "BTC/USD:CXTALP"])
        t += r.randrange(0, 80)
        price = round(r.uniform(5, 900), 2)
        toks += [
            f'"{sym}"',
            str(t),
            str(t - r.randrange(0, 5)),
            str(r.randrange(0, 1 << 22)),
            r.choice(['"Q"', '"Z"', '"\\u0000"', '"K"']),
            datagen.java_double(price),
            datagen.java_double(round(r.uniform(-3, 3), 2)),
            datagen.java_double(float(r.randrange(1, 500) * 100)),
            datagen.java_double(float(r.randrange(1, 10**8))),
            r.choice(['"UP"', '"ZERO_UP"', '"DOWN"', '"UNDEFINED"']),
            r.choice(["true", "false"]),
        ]
    return toks


def _full_frames(r: random.Random) -> list[bytes]:
    out = []
    for k in range(4):
        evs = []
        for _ in range(1 + k * 2):
            evs.append(
                {
                    "eventType": "Quote",
                    "eventSymbol": r.choice(["SPY", "QQQ", "AAPL"]),
                    "bidPrice": round(r.uniform(5, 900), 2),
                    "askPrice": round(r.uniform(5, 900), 2),
                    "bidSize": r.choice([100.0, "NaN", "Infinity"]),
                    "askSize": 200.0,
                }
            )
        evs.append({"eventType": "Trade", "eventSymbol": "SPY", "price": 1.5, "size": "NaN"})
        out.append(json.dumps({"type": "FEED_DATA", "channel": 1, "data": evs}).encode())
    return out


def _fuzz_target_constants() -> tuple[dict[str, list[str]], list[bytes]]:
    """LAYOUTS and SEEDS of tests/fuzz/fuzz_feed.py, read without importing it (atheris)."""
    path = ROOT / "tests" / "fuzz" / "fuzz_feed.py"
    layouts: dict[str, list[str]] = {}
    seeds: list[bytes] = []
    try:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                name = getattr(node.targets[0], "id", "")
                if name == "LAYOUTS":
                    layouts = ast.literal_eval(node.value)
                elif name == "SEEDS":
                    seeds = list(ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError):
        pass
    return layouts, seeds


def seed_families() -> list[tuple[str, dict[str, list[str]], list[bytes]]]:
    """(name, layouts, frames) per family; each family gets its own decoders."""
    from bench import datagen

    r = random.Random(20261121)
    frames: list[bytes] = []
    for per in (1, 2, 5, 20):
        frames += datagen.quote_frames(6, per, seed=per)
    frames += datagen.candle_snapshot_frames(40, 7)
    frames += datagen.candle_snapshot_frames(3, 5, symbol="AAPL{=1d}")
    frames += datagen.candle_frames(8, 3)
    frames += datagen.candle_feed_frames(3, 3, 2, rows_per_frame=4)[1][:8]
    for n in (1, 3, 8):
        frames.append(_feed_data(1, [("Trade", _trade_groups(r, n))]))
    q = datagen.quote_frames(1, 2, seed=99)[0]
    qtoks = q[q.index(b'"Quote",[') + 9 : q.rindex(b"]]")].decode()
    for n in (1, 4):  # one frame, several types (multi_type_frames)
        frames.append(
            _feed_data(1, [("Quote", [qtoks]), ("Trade", _trade_groups(r, n)), ("Quote", [qtoks])])
        )
    frames += _full_frames(r)
    main_layouts = {
        "Quote": list(datagen.QUOTE_FIELDS),
        "Candle": list(datagen.CANDLE_FIELDS),
        "Trade": list(TRADE_FIELDS),
    }
    fz_layouts, fz_seeds = _fuzz_target_constants()
    spec = list(fz_seeds)
    for p in sorted((ROOT / "tests" / "data" / "dxlink_frames").glob("*.json")):
        raw = p.read_bytes()
        spec.append(raw)
        with contextlib.suppress(ValueError):
            spec.append(json.dumps(json.loads(raw), separators=(",", ":")).encode())
    fams = [("datagen", main_layouts, frames)]
    if spec:
        fams.append(("spec", fz_layouts or main_layouts, spec))
    return fams


# ---------------------------------------------------------------------------------------------
# the mutator

NUM_RE = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
STR_RE = re.compile(rb'"(?:[^"\\]|\\.)*"')
VAL_RE = re.compile(rb'-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|"(?:[^"\\]|\\.)*"|\[|\{')

NUMBERS = [
    b"0",
    b"-0",
    b"-0.0",
    b"1e309",
    b"-1e309",
    b"1e-400",
    b"4.9E-324",
    b"2.2250738585072014E-308",
    b"1.7976931348623157E308",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"0.1000000000000000055511151231257827",
    b"123456789012345678901234567890",
    b"1.0E",
    b"1.",
    b".5",
    b"01",
    b"-",
    b"+1",
    b"1e+",
    b"0x10",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1E400",
    b"1e-9999999999",
    b"1e99999999999999999999",
    b"3.141592653589793238462643383279",
    b"7543222285683916800",
    b"1.3743299E7",
    b"1.0E-4",
    b"true",
    b"null",
]
STRINGS = [
    b'""',
    b'"NaN"',
    b'"Infinity"',
    b'"-Infinity"',
    b'"nan"',
    b'"1.5"',
    b'"12"',
    b'"-9223372036854775809"',
    b'"\\u0000"',
    b'"\\ud800"',
    b'"\\udc00\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\uZZZZ"',
    b'"\\x"',
    b'"\\"',
    b'"caf\xc3\xa9"',
    b'"\xff"',
    b'"\xed\xa0\x80"',
    b'"\xc0\xaf"',
    b'"\xf4\x90\x80\x80"',
    b'"\xe2\x82"',
    b"null",
    b"true",
    b"false",
    b"[]",
    b"{}",
    b"1",
    b'"Quote"',
    b'"Candle"',
    b'"Trade"',
    b'"Foo"',
    b'"FEED_DATA"',
    b'"FEED_CONFIG"',
    b'"eventType"',
]
BAD_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
]
TOKENS = [
    b'"type"',
    b'"FEED_DATA"',
    b'"channel"',
    b'"data"',
    b'"eventType"',
    b'"Quote"',
    b'"Candle"',
    b'"Trade"',
    b'"NaN"',
    b",",
    b":",
    b"[",
    b"]",
    b"{",
    b"}",
    b'"',
    b"\\",
    b"null",
    b"true",
    b"false",
    b" ",
    b"\n",
    b"\t",
    b"\x00",
    b"-",
    b"e",
    b".",
    b"0",
]
INTERESTING_BYTES = b'\x00"\\,[]{}: \n\t-.eE09\x7f\x80\xc3\xff'


class Mutator:
    def __init__(self, pool: list[bytes]) -> None:
        self.pool = pool
        self.ops = [
            (self.flip, 6),
            (self.byte_set, 5),
            (self.truncate, 4),
            (self.insert, 6),
            (self.delete, 5),
            (self.duplicate, 3),
            (self.splice, 4),
            (self.number, 18),
            (self.string, 14),
            (self.huge, 6),
            (self.bad_utf8, 4),
            (self.nest, 5),
            (self.structure, 10),
            (self.whitespace, 5),
        ]
        self._funcs = [f for f, _ in self.ops]
        self._cum: list[int] = []
        acc = 0
        for _, w in self.ops:
            acc += w
            self._cum.append(acc)

    def mutate(self, r: random.Random, frame: bytes) -> bytes:
        n = r.choices((0, 1, 2, 3, 5), (5, 65, 20, 8, 2))[0]
        b = frame
        for _ in range(n):
            f = r.choices(self._funcs, cum_weights=self._cum)[0]
            b = f(r, b)
        return b

    # -- byte level
    def flip(self, r: random.Random, b: bytes) -> bytes:
        if not b:
            return b
        a = bytearray(b)
        for _ in range(r.randint(1, 4)):
            a[r.randrange(len(a))] ^= 1 << r.randrange(8)
        return bytes(a)

    def byte_set(self, r: random.Random, b: bytes) -> bytes:
        if not b:
            return b
        a = bytearray(b)
        a[r.randrange(len(a))] = r.choice(INTERESTING_BYTES)
        return bytes(a)

    def truncate(self, r: random.Random, b: bytes) -> bytes:
        return b[: r.randrange(len(b) + 1)]

    def insert(self, r: random.Random, b: bytes) -> bytes:
        i = r.randrange(len(b) + 1)
        x = r.choice(TOKENS) if r.random() < 0.7 else r.randbytes(r.randint(1, 8))
        return b[:i] + x + b[i:]

    def delete(self, r: random.Random, b: bytes) -> bytes:
        if not b:
            return b
        i = r.randrange(len(b))
        n = r.randint(1, 16) if r.random() < 0.8 else r.randint(1, max(1, len(b) // 4))
        return b[:i] + b[i + n :]

    def duplicate(self, r: random.Random, b: bytes) -> bytes:
        if not b:
            return b
        i = r.randrange(len(b))
        piece = b[i : i + r.randint(1, 64)]
        j = r.randrange(len(b) + 1)
        return b[:j] + piece * r.randint(1, 3) + b[j:]

    def splice(self, r: random.Random, b: bytes) -> bytes:
        o = r.choice(self.pool)
        return b[: r.randrange(len(b) + 1)] + o[r.randrange(len(o) + 1) :]

    # -- token level
    def _find(self, r: random.Random, rx: re.Pattern[bytes], b: bytes) -> re.Match[bytes] | None:
        if not b:
            return None
        m = rx.search(b, r.randrange(len(b)))
        return m if m is not None else rx.search(b)

    def number(self, r: random.Random, b: bytes) -> bytes:
        m = self._find(r, NUM_RE, b)
        if m is None:
            return b
        k = r.random()
        if k < 0.6:
            x = r.choice(NUMBERS)
        elif k < 0.8:  # a nearby ordinary number (valid JSON, different value)
            x = str(r.choice([r.randrange(-(10**6), 10**6), r.uniform(-1e6, 1e6)])).encode()
        else:  # digits edited in place
            t = bytearray(m.group())
            t[r.randrange(len(t))] = r.choice(b"0123456789.eE-+")
            x = bytes(t)
        return b[: m.start()] + x + b[m.end() :]

    def string(self, r: random.Random, b: bytes) -> bytes:
        m = self._find(r, STR_RE, b)
        if m is None:
            return b
        if r.random() < 0.15:  # a long string
            x = b'"' + b"A" * r.choice((100, 4096, 70000)) + b'"'
        else:
            x = r.choice(STRINGS)
        return b[: m.start()] + x + b[m.end() :]

    def huge(self, r: random.Random, b: bytes) -> bytes:
        m = self._find(r, NUM_RE, b)
        if m is None:
            return b
        n = r.choice((20, 40, 310, 400, 5000))
        kind = r.randrange(5)
        if kind == 0:
            x = b"9" * n
        elif kind == 1:
            x = b"-" + b"1" + b"0" * n
        elif kind == 2:
            x = b"1" * n + b"." + b"5" * r.choice((1, n))
        elif kind == 3:
            x = b"0." + b"0" * n + b"1"
        else:
            x = b"1e" + str(r.choice((308, 309, 400, 10**9, 10**20))).encode()
        return b[: m.start()] + x + b[m.end() :]

    def bad_utf8(self, r: random.Random, b: bytes) -> bytes:
        m = self._find(r, STR_RE, b)
        x = r.choice(BAD_UTF8)
        if m is None:
            i = r.randrange(len(b) + 1)
            return b[:i] + x + b[i:]
        i = r.randint(m.start() + 1, m.end() - 1)
        return b[:i] + x + b[i:]

    def nest(self, r: random.Random, b: bytes) -> bytes:
        m = self._find(r, VAL_RE, b)
        if m is None:
            return b
        depth = r.choice((1, 2, 10, 64, 200, 255, 256, 257, 1000, 5000))
        if r.random() < 0.7:
            op, cl = b"[" * depth, b"]" * depth
        else:
            op, cl = b'{"a":' * depth, b"}" * depth
        if r.random() < 0.2:
            cl = cl[: r.randrange(len(cl) + 1)]  # unbalanced
        s, e = m.start(), m.end()
        if m.group() in (b"[", b"{"):  # wrap just the bracket's content start
            e = s
        return b[:s] + op + b[s:e] + cl + b[e:]

    def structure(self, r: random.Random, b: bytes) -> bytes:
        k = r.randrange(9)
        if k == 0:
            return b.replace(b'"FEED_DATA"', r.choice([b'"FEED_CONFIG"', b'"feed_data"', b"1"]), 1)
        if k == 1:
            return re.sub(rb'"type":"[A-Z_]*",?', b"", b, count=1)
        if k == 2:
            ch = r.choice([b'"1"', b"-1", b"9223372036854775808", b"1.5", b"null", b"[]"])
            return re.sub(rb'"channel":-?[0-9]+', b'"channel":' + ch, b, count=1)
        if k == 3:  # drop one value: count no longer a multiple of the layout
            m = self._find(r, VAL_RE, b)
            if m is None or m.group() in (b"[", b"{"):
                return b
            e = m.end() + (1 if b[m.end() : m.end() + 1] == b"," else 0)
            return b[: m.start()] + b[e:]
        if k == 4:
            return b.replace(b'"data":[', b'"data":{"x":[', 1) + b"}"
        if k == 5:  # a second "data" key
            return b.replace(b'"data":', b'"data":[],"data":', 1)
        if k == 6:  # type name swapped
            names = [b'"Quote"', b'"Candle"', b'"Trade"', b'"Foo"', b'"Greeks"', b'""']
            old = r.choice(names[:3])
            return b.replace(old, r.choice(names), 1)
        if k == 7:  # an extra group appended to data
            extra = r.choice([b',"Quote",[]', b',"Trade"', b",1", b',"Candle",[1,2,3]', b",{}"])
            i = b.rfind(b"]")
            return b[:i] + extra + b[i:] if i > 0 else b
        # duplicate the values array (many more events)
        i, j = b.find(b",["), b.rfind(b"]]")
        if 0 < i < j:
            vals = b[i + 2 : j]
            return b[: i + 2] + vals + b"," + vals + b[j:]
        return b

    def whitespace(self, r: random.Random, b: bytes) -> bytes:
        a = bytearray()
        for c in b:
            a.append(c)
            if c in b",:[{" and r.random() < 0.2:
                a += r.choice((b" ", b"\n", b"\t", b"\r\n  "))
        return bytes(a)


# ---------------------------------------------------------------------------------------------
# the child: decode everything, count, sample against the oracle


def _canon(v: Any) -> Any:
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v)
    if isinstance(v, list):
        return [_canon(x) for x in v]
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in v.items()}
    return v


def _edge_frames() -> list[tuple[int, bytes]]:
    """Hand-made frames at known limits, decoded first in chunk 0 of every run (so that even a
    --quick run sees them; a random 1M-frame run hits each of them only a few times).
    (family, frame): family 0 has the SDK layouts, family 1 the fuzz target's (with "Foo")."""
    q = (
        b'{"type":"FEED_DATA","channel":1,"data":["Quote",["SPY",0,0,0,1748020169040,"Q",'
        b'1748020169043,"Z",%b,868.88,2900.0,100.0]]}'
    )
    foo = b'{"type":"FEED_DATA","channel":1,"data":["Foo",["a",%b,1,"b",null,2]]}'
    big = b"1" + b"0" * 4300  # one digit more than CPython's default int_max_str_digits
    out = [
        (1, foo % big),  # unknown field, object column (a null in it), a 4301-digit integer
        (1, foo % (b"-" + big)),
        (1, b'{"type":"FEED_DATA","channel":1,"data":["Foo",["a",%b,1,"b",2,3]]}' % big),
        (0, q % big),  # float64 column: an integer token far beyond 1e308
        (0, q % b"1e400"),
        (0, q % b"4.9E-324"),
        (0, q % (b"0." + b"0" * 400 + b"1")),
        (0, q % (b"9" * 5000 + b".5")),
        (0, q.replace(b'"SPY"', b'"\\ud800"') % b"1.5"),
        (0, q.replace(b'"SPY"', b'"\xff\xfe"') % b"1.5"),
        (0, q.replace(b"1748020169040", b"9223372036854775808") % b"1.5"),
        (0, q.replace(b"1748020169040", b"-9223372036854775809") % b"1.5"),
        (0, q.replace(b"1748020169040", b"-0") % b"1.5"),
    ]
    for depth in (254, 255, 256, 257, 5000):
        out.append((0, b'{"type":"FEED_DATA","channel":1,"data":' + b"[" * depth + b"]" * depth))
        out.append((1, foo % (b"[" * depth + b"1" + b"]" * depth)))
    return out


EDGE_FRAMES = _edge_frames()


def frames_of_chunk(
    seed: int, chunk: int, fams: list[tuple[str, dict[str, list[str]], list[bytes]]], mut: Mutator
) -> list[tuple[int, bytes]]:
    r = random.Random(seed * 1_000_003 + chunk)
    out = []
    for _ in range(CHUNK):
        f = 0 if len(fams) == 1 or r.random() < 0.85 else 1
        out.append((f, mut.mutate(r, r.choice(fams[f][2]))))
    if chunk == 0 and len(fams) > 1:
        out[: len(EDGE_FRAMES)] = EDGE_FRAMES
    return out


def child_main(a: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.oracles import feed as oracle

    from bench.soak.common import rss_kib, trimmed_rss_kib
    from ttfast._core.feed import FeedDecoder, message_type
    from ttfast.errors import DecodeError

    logging.getLogger("ttfast").setLevel(logging.CRITICAL)  # bad frames are the point here
    fams = seed_families()
    pool = [fr for _, _, frs in fams for fr in frs]
    mut = Mutator(pool)
    modes = ("raise", "skip")
    decs: list[dict[str, Any]] = []
    orcs: list[dict[str, Any]] = []
    for _, layouts, _ in fams:
        d, o = {}, {}
        for m in modes:
            d[m] = FeedDecoder(on_error=m)
            o[m] = oracle.OracleDecoder(on_error=m)
            for t, fields in layouts.items():
                d[m].set_fields(t, list(fields))
                o[m].set_fields(t, list(fields))
        decs.append(d)
        orcs.append(o)
    art = Path(a.artifacts)
    stats: dict[str, Any] = {
        m: {"frames": 0, "ok": 0, "events": 0, "decode_error": 0, "other": 0} for m in modes
    }
    stats["oracle"] = {"compared": 0, "mismatch": 0, "skipped_deep": 0, "skipped_long_int": 0}
    stats["other_examples"] = []
    stats["mismatch_examples"] = []
    stats["chunks_done"] = []
    chunks = range(a.start_chunk, a.end_chunk)
    warm_after = a.start_chunk + max(1, min(20, len(chunks) // 10))
    stats["rss_warm_kib"] = None
    stats["rss_trace"] = []
    trace_every = a.trace_every or max(1, len(chunks) // 10)
    t0 = time.monotonic()
    dump = open(a.dump, "wb") if a.dump else None  # noqa: SIM115
    n_frames = 0
    default_digits = sys.get_int_max_str_digits()
    ca = os.environ.get("TTFAST_SOAK_CRASH_AT", "")  # "chunk:frame", for testing the harness
    crash_at = tuple(int(x) for x in ca.split(":")) if ca else None

    def save(kind: str, idx: str, frame: bytes) -> str:
        p = art / f"{kind}-{idx}.bin"
        with contextlib.suppress(OSError):
            p.write_bytes(frame)
        return str(p)

    for c in chunks:
        if c == warm_after:
            stats["rss_warm_raw_kib"] = rss_kib()
            stats["rss_warm_kib"] = trimmed_rss_kib()
            stats["warm_frames"] = n_frames
        for k, (f, frame) in enumerate(frames_of_chunk(a.seed, c, fams, mut)):
            if dump is not None:
                dump.seek(0)
                dump.truncate()
                dump.write(frame)
                dump.flush()
            n_frames += 1
            if (c, k) == crash_at:  # self-test of the crash handling (see run())
                os.kill(os.getpid(), signal.SIGSEGV)
            check = n_frames % ORACLE_EVERY == 0 or (c == 0 and k < len(EDGE_FRAMES))
            try:
                message_type(frame)
            except DecodeError:
                pass
            except Exception as e:
                stats["message_type_other"] = stats.get("message_type_other", 0) + 1
                if len(stats["other_examples"]) < 20:
                    p = save("other", f"{c}-{k}-message_type", frame)
                    stats["other_examples"].append(f"message_type: {type(e).__name__}: {e} [{p}]")
            for m in modes:
                st = stats[m]
                st["frames"] += 1
                got: list[Any] | None = None
                try:
                    batches = decs[f][m].decode(frame)
                    st["ok"] += 1
                    for b in batches:
                        st["events"] += len(b)
                        b.columns  # noqa: B018 -- materialize every column
                    if check:
                        got = [
                            (
                                b.event_type,
                                b.fields,
                                [{kk: _canon(v) for kk, v in d.items()} for d in b.to_dicts()],
                            )
                            for b in batches
                        ]
                except DecodeError:
                    st["decode_error"] += 1
                except Exception as e:  # the invariant: nothing but DecodeError
                    st["other"] += 1
                    if len(stats["other_examples"]) < 20:
                        p = save("other", f"{c}-{k}-{m}", frame)
                        stats["other_examples"].append(f"{m}: {type(e).__name__}: {e} [{p}]")
                    continue
                if not check:
                    continue
                if frame.count(b"[") + frame.count(b"{") > 200:
                    stats["oracle"]["skipped_deep"] += 1
                    continue  # nesting limits differ (ttfast 256 levels, json: recursion)
                if _LONG_INT.search(frame):
                    # an integer of more digits than int() takes: the oracle (json.loads)
                    # rejects the whole frame; ttfast rejects it only where it would have to
                    # build a Python int (unknown-field columns, raw values: a DecodeError for
                    # that group), and parses it into float64 columns (tests/unit/test_feed.py)
                    stats["oracle"]["skipped_long_int"] += 1
                    continue
                sys.set_int_max_str_digits(0)
                try:
                    want: list[Any] | None = [
                        (t, tuple(fl), [{kk: _canon(v) for kk, v in d.items()} for d in rows])
                        for t, fl, rows in orcs[f][m].decode(frame)
                    ]
                except oracle.OracleError:
                    want = None
                finally:
                    sys.set_int_max_str_digits(default_digits)
                stats["oracle"]["compared"] += 1
                if want != got:
                    stats["oracle"]["mismatch"] += 1
                    if len(stats["mismatch_examples"]) < 20:
                        p = save("mismatch", f"{c}-{k}-{m}", frame)
                        stats["mismatch_examples"].append(
                            f"{m}: ttfast {'rejects' if got is None else 'accepts'}, oracle "
                            f"{'rejects' if want is None else 'accepts'} [{p}]"
                        )
        stats["chunks_done"] = [a.start_chunk, c + 1]
        if (c - a.start_chunk) % trace_every == 0:
            stats["rss_trace"].append([n_frames, rss_kib(), trimmed_rss_kib()])
        stats["elapsed_s"] = time.monotonic() - t0
        if a.progress:
            tmp = a.progress + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(stats, fh)
            os.replace(tmp, a.progress)
    stats["rss_end_raw_kib"] = rss_kib()
    stats["rss_end_kib"] = trimmed_rss_kib()
    stats["rss_trace"].append([n_frames, stats["rss_end_raw_kib"], stats["rss_end_kib"]])
    if stats["rss_warm_kib"] is None:
        stats["rss_warm_kib"] = stats["rss_end_kib"]
        stats["rss_warm_raw_kib"] = stats["rss_end_raw_kib"]
        stats["warm_frames"] = n_frames
    for m in modes:
        stats[m]["stats"] = [d[m].stats for d in decs]
    stats["elapsed_s"] = time.monotonic() - t0
    if a.progress:
        with open(a.progress + ".tmp", "w") as fh:
            json.dump(stats, fh)
        os.replace(a.progress + ".tmp", a.progress)
    return 0


# ---------------------------------------------------------------------------------------------
# the parent: run children, survive crashes and hangs, build the table rows


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.soak.fuzz", "--child", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(proc: subprocess.Popen[bytes], progress: Path, hang_s: float) -> tuple[int | None, bytes]:
    """Return code (None = hung and killed) and the child's stderr tail."""
    last = time.monotonic()
    last_m = 0.0
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            err = proc.stderr.read() if proc.stderr else b""
            return rc, err[-3000:]
        except subprocess.TimeoutExpired:
            pass
        m = progress.stat().st_mtime if progress.exists() else 0.0
        if m != last_m:
            last_m, last = m, time.monotonic()
        elif time.monotonic() - last > hang_s:
            proc.kill()
            proc.wait()
            return None, b""


def _read(progress: Path) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = json.loads(progress.read_text())
        return out
    except (OSError, ValueError):
        return None


def run(frames: int, seed: int, artifacts: Path, hang_s: float = 120.0) -> dict[str, Any]:
    """Run `frames` mutated frames (rounded up to whole chunks) in child processes."""
    from bench.soak.common import log

    n_chunks = max(1, -(-frames // CHUNK))
    total: dict[str, Any] = {
        m: {"frames": 0, "ok": 0, "events": 0, "decode_error": 0, "other": 0}
        for m in ("raise", "skip")
    }
    total["oracle"] = {"compared": 0, "mismatch": 0, "skipped_deep": 0, "skipped_long_int": 0}
    total.update(
        crashes=[],
        hangs=[],
        other_examples=[],
        mismatch_examples=[],
        segments=[],
        frames_planned=n_chunks * CHUNK,
        message_type_other=0,
        seed=seed,
    )
    start = 0
    t0 = time.monotonic()
    while start < n_chunks:
        progress = artifacts / f"fuzz-progress-{start}.json"
        progress.unlink(missing_ok=True)
        common = ["--seed", str(seed), "--artifacts", str(artifacts)]
        proc = _spawn(
            [
                *common,
                *("--start-chunk", str(start), "--end-chunk", str(n_chunks)),
                *("--progress", str(progress)),
            ]
        )
        rc, err = _wait(proc, progress, hang_s)
        st = _read(progress)
        done_to = st["chunks_done"][1] if st and st.get("chunks_done") else start
        if st:
            for m in ("raise", "skip"):
                for k in ("frames", "ok", "events", "decode_error", "other"):
                    total[m][k] += st[m][k]
            for k in ("compared", "mismatch", "skipped_deep", "skipped_long_int"):
                total["oracle"][k] += st["oracle"][k]
            total["message_type_other"] += st.get("message_type_other", 0)
            total["other_examples"] += st["other_examples"]
            total["mismatch_examples"] += st["mismatch_examples"]
            total["segments"].append(
                {
                    "chunks": [start, done_to],
                    "rss_warm_kib": st.get("rss_warm_kib"),
                    "rss_end_kib": st.get("rss_end_kib"),
                    "rss_warm_raw_kib": st.get("rss_warm_raw_kib"),
                    "rss_end_raw_kib": st.get("rss_end_raw_kib"),
                    "warm_frames": st.get("warm_frames"),
                    "rss_trace": st.get("rss_trace"),
                    "decoder_stats": {m: st[m].get("stats") for m in ("raise", "skip")},
                }
            )
        if rc == 0 and done_to >= n_chunks:
            break
        bad = done_to  # the chunk that was running
        if rc is None:
            total["hangs"].append({"chunk": bad})
            log(f"fuzz: chunk {bad} hung (> {hang_s:.0f}s without progress); skipping it")
        else:
            sig = -rc if rc < 0 else None
            what = signal.Signals(sig).name if sig else f"exit {rc}"
            log(f"fuzz: child died in chunk {bad} ({what}); replaying it frame by frame")
            dump = artifacts / f"crash-chunk{bad}.bin"
            p2 = _spawn(
                [
                    *common,
                    *("--start-chunk", str(bad), "--end-chunk", str(bad + 1)),
                    *("--progress", str(artifacts / "fuzz-replay.json"), "--dump", str(dump)),
                ]
            )
            rc2, _ = _wait(p2, artifacts / "fuzz-replay.json", hang_s)
            total["crashes"].append(
                {
                    "chunk": bad,
                    "how": what,
                    "stderr": err.decode(errors="replace")[-800:],
                    "replay": "reproduced" if rc2 != 0 else "not reproduced",
                    "frame_file": str(dump) if rc2 != 0 else None,
                }
            )
            if len(total["crashes"]) > 5:
                log("fuzz: more than 5 crashes, giving up")
                break
        start = bad + 1
    total["elapsed_s"] = time.monotonic() - t0
    return total


def rows(res: dict[str, Any]) -> list[Any]:
    from bench.soak.common import Row

    out = []
    for m in ("raise", "skip"):
        s = res[m]
        ex = [e for e in res["other_examples"] if e.startswith(m + ":")]
        first = f" (e.g. {ex[0][len(m) + 2 :][:70]}...)" if ex else ""
        out.append(
            Row(
                "fuzz",
                f'decode on_error="{m}"',
                f"{s['frames']:,} frames",
                f"ok {s['ok']:,} ({s['events']:,} events); DecodeError {s['decode_error']:,}; "
                f"other exceptions {s['other']}{first}",
                s["other"] == 0 and s["frames"] > 0,
            )
        )
    n_crash, n_hang = len(res["crashes"]), len(res["hangs"])
    mt = res.get("message_type_other", 0)
    out.append(
        Row(
            "fuzz",
            "crashes / hangs (child process)",
            f"{len(res['segments'])} child(ren), {res.get('elapsed_s', 0):.0f} s",
            f"crashes {n_crash}; hangs {n_hang}; message_type() other exceptions {mt}"
            + "".join(f"; chunk {c['chunk']}: {c['how']} ({c['replay']})" for c in res["crashes"]),
            n_crash == 0 and n_hang == 0 and mt == 0,
        )
    )
    o = res["oracle"]
    out.append(
        Row(
            "fuzz",
            "oracle spot-check (tests/oracles/feed.py)",
            f"{o['compared']:,} decodes",
            f"mismatches {o['mismatch']}; skipped (nesting > 200) {o['skipped_deep']}, "
            f"(integer > int_max_str_digits) {o['skipped_long_int']}",
            o["mismatch"] == 0 and o["compared"] > 0,
        )
    )
    full = [g for g in res["segments"] if g.get("rss_end_kib")]
    seg = max(full, key=lambda g: g["chunks"][1] - g["chunks"][0]) if full else {}
    w, e = seg.get("rss_warm_kib"), seg.get("rss_end_kib")
    wr, er = seg.get("rss_warm_raw_kib"), seg.get("rss_end_raw_kib")
    if isinstance(w, int) and isinstance(e, int) and w > 0 and e > 0:
        done = (seg["chunks"][1] - seg["chunks"][0]) * CHUNK
        frames_after = max(0, done - (seg.get("warm_frames") or 0))
        raw = (
            f"; raw VmRSS {wr / 1024:.1f} -> {er / 1024:.1f} MiB"
            if isinstance(wr, int) and isinstance(er, int)
            else ""
        )
        out.append(
            Row(
                "fuzz",
                "RSS after warm-up (VmRSS after malloc_trim)",
                f"{frames_after:,} frames x 2 modes",
                f"{w / 1024:.1f} -> {e / 1024:.1f} MiB ({(e - w) / 1024:+.2f} MiB, limit "
                f"+{RSS_LIMIT_KIB / 1024:.0f} MiB){raw}",
                e - w <= RSS_LIMIT_KIB,
            )
        )
    else:
        out.append(Row("fuzz", "RSS after warm-up (VmRSS)", "n/a", "n/a", None))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-chunk", type=int, default=0)
    p.add_argument("--end-chunk", type=int, default=1)
    p.add_argument("--progress", default="")
    p.add_argument("--dump", default="")
    p.add_argument("--artifacts", default="/tmp")
    p.add_argument("--trace-every", type=int, default=0)
    a = p.parse_args(argv)
    if a.child:
        return child_main(a)
    p.error("run python -m bench.soak (this module's entry point is the fuzz child)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
