"""Soak run (not part of the test command): ``python -m bench.soak --quick`` / ``--minutes N``.

Three parts, each against real components on loopback (see docs/reliability.md):

* ``fuzz``: millions of mutated COMPACT FEED_DATA frames through ``FeedDecoder`` in both
  ``on_error`` modes, in a child process (a crash is a signal, not a dead soak), with RSS and a
  spot-check against the pure-Python oracle (tests/oracles/feed.py);
* ``storm``: the reconnect storm (stormy and calm local dxLink servers sharing seed and clock),
  candle series compared bar for bar;
* ``worker``: the indicator worker on the sim source with a real redis-server and influxd that
  are killed and restarted mid-run; what arrived is compared with what the worker counted.

One table at the end; the exit status is non-zero when an invariant fails.
"""
