"""The garbage collector's settings for the event loop of a long run.

A run builds its long-lived objects first (keys, certificates, parties, databases), then
handles tens of thousands of events that allocate mostly short-lived, acyclic objects. With
the default settings the collector keeps walking those long-lived objects and runs a young
collection every 700 allocations: about 1 % of an rsa2048 run (docs/performance.md).
:func:`long_run_gc` freezes what exists when the loop starts (``gc.freeze``: moved out of
every generation, never examined, not leaked) and makes young collections, and full ones,
rarer; cycles are still collected. Everything is put back when the loop ends, so a test
process or a notebook that runs a world keeps its own settings.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: allocations between two young collections during a run (the interpreter's default is 700)
YOUNG_THRESHOLD = 10_000
#: middle-generation collections between two full ones, at most (the interpreter's default is
#: 10; a full one also waits, as always, until the old generation has grown by a quarter).
#: A full collection walks every object alive: at 100,000 open transactions 13 of them took
#: 8 s of a 1450-s run, and no collection of a 10,000-transaction run freed anything
OLD_THRESHOLD = 100


@contextmanager
def long_run_gc(young_threshold: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """Within the block: objects that exist at its start are frozen, and a young collection
    runs every ``young_threshold`` allocations. Nested use is harmless (the outer block
    restores)."""
    if gc.get_freeze_count():  # an outer block (or the application) froze already
        yield
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(young_threshold, thresholds[0]), thresholds[1], max(OLD_THRESHOLD, thresholds[2]))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
