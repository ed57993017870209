"""The cyclic garbage collector of a long-running worker, set for its heap.

A worker's heap is large and mostly permanent: every module it imported, the
validated plans and templates, pydantic's schemas, and up to a cache's worth of
journeys, each with its own sandboxed copy of the workflow module. CPython's
collector keeps walking all of it: a full collection took 0.2-0.3 s of a busy
worker (2-core AMD EPYC, 1,000 journeys cached), and young collections, at the
default of one per 700 net allocations, ran about 40 times a second. Measured over
1,000 concurrent journeys, collections took about 1.8 s of the worker's CPU with the
defaults and 0.8 s with the settings below (the README's performance section).
Reference counting still frees almost everything at once; the collector only finds
cycles.
"""

from __future__ import annotations

import gc

# One young collection per 20,000 net allocations instead of 700: a few megabytes
# of cyclic garbage may wait a little longer, and each collection still walks only
# the young objects.
YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def settle_startup_heap() -> None:
    """Call once the process has started (imports done, workers built): what exists
    now lives as long as the process, so the collector stops walking it
    (``gc.freeze``), and young collections run less often."""
    gc.collect()  # what startup left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
