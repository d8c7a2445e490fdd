# C-level interface of ttfast._core.pipeline (the worker's per-batch loop). Other compiled code
# only needs the output kinds; the loop itself is driven from Python once per batch.
cdef enum:
    K_FORMING = 0    # the newest bar, revised (not committed)
    K_FINAL = 1      # a bar that closed in this batch, committed
    K_HISTORY = 2    # a bar recomputed after a snapshot / correction / removal
