# Checked by tests/typing/test_reveal.py with mypy --strict: each line with a trailing "E:" comment
# must be reported with that error code (the Literal types users touch). Not imported at run time.
import ttfast


async def misuse(s: ttfast.DxLinkStreamer, store: ttfast.CandleStore) -> None:
    s.listen("Quote", policy="drop_newest")  # E: arg-type
    async for ev in s.events():
        if ev.kind == "disconnect":  # E: comparison-overlap
            pass
    store.apply([1, 2, 3])  # E: arg-type
