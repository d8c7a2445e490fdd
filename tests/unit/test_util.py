"""ttfast._util.redact_url: both policies (configured URLs for logs, URLs a server sent us)."""

from __future__ import annotations

import pytest

from ttfast._util import redact_url

CASES = [
    # url, for logs (default), from a peer
    (
        "redis://user:s3cret@host:6379/0?token=x",
        "redis://user:***@host:6379/0",
        "redis://host:6379/0?<redacted>",
    ),
    ("redis://:pw@host/0", "redis://:***@host/0", "redis://host/0"),
    ("https://tok@h/x#frag", "https://tok@h/x", "https://h/x"),
    ("https://u:p@h:443/x?y#z", "https://u:***@h:443/x", "https://h:443/x?<redacted>"),
    (
        "https://evil.example/x?secret=1",
        "https://evil.example/x",
        "https://evil.example/x?<redacted>",
    ),
    ("redis://[::1]:6379/0", "redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ("//host/p?q", "//host/p", "//host/p?<redacted>"),
    ("/elsewhere?t=1", "/elsewhere", "/elsewhere?<redacted>"),
    ("  http://a.b/c  ", "http://a.b/c", "http://a.b/c"),
    ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ("redis://h:99999/", "<unparseable url>", "<redacted>"),
    ("http://[::1", "<unparseable url>", "<redacted>"),
    ("", "", ""),
]


@pytest.mark.parametrize(("url", "for_logs", "from_peer"), CASES)
def test_redact_url(url: str, for_logs: str, from_peer: str) -> None:
    assert redact_url(url) == for_logs
    assert redact_url(url, from_peer=True) == from_peer
    for out in (redact_url(url), redact_url(url, from_peer=True)):
        assert "s3cret" not in out and "secret=1" not in out and ":p@" not in out


def test_redact_url_keeps_the_nodes_of_a_cluster_url() -> None:
    url = "redis+cluster://u:secret@10.0.0.1:7000,10.0.0.2:7001/0?password=x"
    assert redact_url(url) == "redis+cluster://u:***@10.0.0.1:7000,10.0.0.2:7001/0"
    assert (
        redact_url(url, from_peer=True)
        == "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/0?<redacted>"
    )
