"""Pause Python's cyclic garbage collector around allocation-heavy, cycle-free work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC inside the block (restored after, even on error).

    Building a trajectory graph creates tens of thousands of small tuples while a batch of
    episodes keeps hundreds of thousands of objects alive, so the collector's full passes
    cost as much as the work. Nothing built here forms cycles; reference counting frees it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
