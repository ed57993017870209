"""A worker settles its startup heap: what startup made is frozen out of the cyclic
collector's walks, young collections run less often, and cycles made afterwards
are still collected. Run in a fresh interpreter: the test process keeps its own."""

from __future__ import annotations

import subprocess
import sys

from engine.garbage_collection import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD

PROBE = """
import gc, weakref
import engine.worker  # what a worker imports before it settles
from engine.garbage_collection import settle_startup_heap

settle_startup_heap()

class Node:
    pass

node = Node()
node.itself = node  # a cycle: reference counting alone never frees it
alive = weakref.ref(node)
del node
gc.collect()
print(gc.get_freeze_count(), *gc.get_threshold(), alive() is None)
"""


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    frozen, young, middle, old, cycle_freed = probe.stdout.split()

    assert int(frozen) > 50_000  # the imported modules, their functions, classes...
    assert (int(young), int(middle), int(old)) == (
        YOUNG_THRESHOLD,
        MIDDLE_THRESHOLD,
        OLD_THRESHOLD,
    )
    assert cycle_freed == "True"
