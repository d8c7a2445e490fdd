# Shared C-level definitions for every ttfast._core module. Declarations only: cimport-able,
# no Python objects, no imports of the asyncio shell.
from libc.stdint cimport int64_t, uint64_t, int32_t, uint8_t

# dxFeed IndexedEvent eventFlags bits (spec dxlink.md §6.3): the one definition. Python code reads
# them from ttfast._core.feed (TX_PENDING, ...), which re-exports these values.
cdef enum:
    TX_PENDING = 0x01
    REMOVE_EVENT = 0x02
    SNAPSHOT_BEGIN = 0x04
    SNAPSHOT_END = 0x08
    SNAPSHOT_SNIP = 0x10
    SNAPSHOT_MODE = 0x40

# Column kinds used by the decoder and consumers of EventBatch.
cdef enum ColumnKind:
    COL_DOUBLE = 0
    COL_INT64 = 1
    COL_BOOL = 2
    COL_OBJECT = 3
