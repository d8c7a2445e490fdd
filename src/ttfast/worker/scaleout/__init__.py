"""Scale-out over Redis (Cluster): ``ttfast-worker --role ingest`` and ``--role compute``.

* **ingest**: the usual source (sim or dxLink) into the worker's `CandleStore`; every change
  of the store becomes one stream entry (``XADD {p<n>}:candles MAXLEN ~ N``) in the stream of
  the symbol's partition, ``crc32(candle symbol) % P``. An entry carries the bars that may
  differ after the change, as full bars (upserts): ``k=s`` the whole series (a snapshot,
  correction or removal: replace), ``k=u`` the bars from the first changed one on. So applying
  an entry twice, or an older entry again before the newer ones, converges to the same series.
* **compute**: N processes share the P partitions through leases (``SET {p<n>}:lease <id> NX
  PX ttl`` with a new fencing token, in one script; renewed by a compare-and-PEXPIRE script,
  given up by a compare-and-DEL). Each owned partition is read with the consumer group
  ``compute`` (``XREADGROUP``); its entries go through a store + the compiled
  `IndicatorPipeline` (the single-process worker's code), the outputs (``snapshot:<name>`` and
  ``history:<name>`` as fenced scripts, ``SPUBLISH analytics:delta:<name>``) are written in
  one round, and only once Redis acknowledged all of them are the entries acknowledged
  (``XACK``, in the fenced commit round). On taking a partition over, the new owner claims
  the pending entries of the previous owner (``XAUTOCLAIM``), rebuilds the state from the
  partition's state log and replays the retained stream from its checkpoint up to the group's
  last delivered entry (writing the outputs again from the first pending entry on), and
  continues with new entries.

Outputs are at-least-once and idempotent: an entry whose outputs were written but not
acknowledged is processed again by the next owner and yields the same bytes. docs/scale-out.md
has the choices and the failure analysis.

May touch: the Redis (Cluster) named by ``--redis`` (``redis://`` or
``redis+cluster://host:port,host:port``, redis-py's asyncio ``RedisCluster``).
"""

from __future__ import annotations

from ttfast.worker.config import WorkerConfig
from ttfast.worker.scaleout.common import (
    GROUP,
    MEMBERS_KEY,
    connect,
    decode_entry,
    encode_entry,
    lease_key,
    partition_of,
    redact,
    stream_key,
)
from ttfast.worker.scaleout.compute import ComputeStats, ComputeWorker
from ttfast.worker.scaleout.ingest import IngestWorker

__all__ = [
    "GROUP",
    "MEMBERS_KEY",
    "ComputeStats",
    "ComputeWorker",
    "IngestWorker",
    "connect",
    "decode_entry",
    "encode_entry",
    "lease_key",
    "partition_of",
    "redact",
    "run_role",
    "stream_key",
]


async def run_role(cfg: WorkerConfig) -> int:
    """``--role ingest`` or ``--role compute``."""
    if cfg.role == "ingest":
        return await IngestWorker(cfg).run()
    return await ComputeWorker(cfg).run()
