# C-level interface of ttfast._core.pipeline (the worker's per-batch loop), and the facts its
# output is read by. `cpdef enum`: each name is a C constant here and a Python int attribute of
# ttfast._core.pipeline (one definition for both).

# PipelineOutput.kind of a row.
cpdef enum:
    KIND_FORMING = 0    # the newest bar, revised (not committed)
    KIND_FINAL = 1      # a bar that closed in this batch, committed
    KIND_HISTORY = 2    # a bar recomputed after a snapshot / correction / removal

# Rows of PipelineOutput.columns (float64, shape (COLUMN_COUNT, n)); their names, in this order,
# are pipeline.COLUMNS. Candle values first (open..volume), then the indicators (macd..hma).
cpdef enum:
    COLUMN_OPEN = 0
    COLUMN_HIGH = 1
    COLUMN_LOW = 2
    COLUMN_CLOSE = 3
    COLUMN_VOLUME = 4
    COLUMN_MACD = 5
    COLUMN_SIGNAL = 6
    COLUMN_HIST = 7
    COLUMN_HMA = 8
    COLUMN_COUNT = 9
