"""OrderOutcomeUnknown carries the raw response (bounded body, headers without secrets) and its
str/repr never show a token, whatever the server sent back (issue 13, defect 3)."""

from __future__ import annotations

import pickle

from ttfast.errors import MAX_RAW_BODY, ApiError, OrderOutcomeUnknown, TtfastError

TOKEN = "at-SUPERSECRET-51f0c2"


def make(cause: str = "HTTP 502", **kw: object) -> OrderOutcomeUnknown:
    args: dict[str, object] = {
        "status": 502,
        "body": b"<html>bad gateway</html>",
        "headers": [("Content-Type", "text/html"), ("X-Request-Id", "r-1")],
    }
    args.update(kw)
    return OrderOutcomeUnknown(
        "ttf-abc",
        "POST",
        "/accounts/5WT00000/orders",
        cause,
        **args,  # type: ignore[arg-type]
    )


def test_carries_the_raw_response() -> None:
    e = make()
    assert isinstance(e, TtfastError) and not isinstance(e, ApiError)
    assert e.external_identifier == "ttf-abc" and e.status == 502 and e.order_id is None
    assert e.body == b"<html>bad gateway</html>" and e.body_size == len(e.body)
    assert not e.body_truncated
    assert e.headers == {"content-type": "text/html", "x-request-id": "r-1"}  # names lower-cased


def test_body_is_bounded() -> None:
    big = b"x" * (MAX_RAW_BODY * 50)
    e = make(body=big)
    assert len(e.body) == MAX_RAW_BODY and e.body_size == len(big) and e.body_truncated
    assert len(str(e)) < 400 and len(repr(e)) < 400


def test_secret_headers_are_redacted() -> None:
    e = make(
        headers=[
            ("Authorization", "Bearer " + TOKEN),
            ("Set-Cookie", "sid=" + TOKEN),
            ("Set-Cookie", "other=1"),
            ("X-Api-Key", TOKEN),
            ("X-Echo", "Bearer " + TOKEN),
            ("Location", f"https://user:{TOKEN}@evil.example/x?token={TOKEN}#f"),
        ],
        redact=[TOKEN],
    )
    assert e.headers["authorization"] == "<redacted>"
    assert e.headers["set-cookie"] == "<redacted>, <redacted>"
    assert e.headers["x-api-key"] == "<redacted>"
    assert e.headers["location"] == "https://evil.example/x?<redacted>"
    assert TOKEN not in repr(e.headers)


def test_token_echoed_in_body_is_scrubbed_and_never_in_str_or_repr() -> None:
    # the token sits right at the cut: scrubbing happens before bounding, no prefix survives
    body = b"y" * (MAX_RAW_BODY - 5) + TOKEN.encode() + b"tail"
    e = make(body=body, redact=[TOKEN], cause="HTTP 502 Bearer " + TOKEN)
    assert TOKEN[:6].encode() not in e.body
    for t in [str(e), repr(e), str(e.args), e.cause, repr(e.headers), repr(e.__reduce__())]:
        assert TOKEN not in t
    for t in [str(e), repr(e)]:
        assert "yyyy" not in t  # the body itself is never in str/repr


def test_str_and_repr_name_what_to_look_up() -> None:
    e = make(order_id=42)
    s = str(e)
    assert "unknown" in s and "ttf-abc" in s and "order-id=42" in s and "not resent" in s
    r = repr(e)
    assert r.startswith("OrderOutcomeUnknown(") and "502" in r and "ttf-abc" in r


def test_pickles_with_the_raw_response() -> None:
    e = make(order_id=7, redact=[TOKEN])
    e2 = pickle.loads(pickle.dumps(e))
    assert isinstance(e2, OrderOutcomeUnknown)
    assert (e2.status, e2.body, e2.headers, e2.order_id) == (e.status, e.body, e.headers, 7)


def test_positional_form_still_works() -> None:
    e = OrderOutcomeUnknown("t", "DELETE", "/p", "ServerDisconnectedError")
    assert e.status == 0 and e.body == b"" and e.headers == {} and e.body_size == 0
