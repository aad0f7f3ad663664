"""Garbage-collector settings for bulk work: a sync allocates millions of short-lived objects.

A page of a thousand records is some forty thousand dicts and lists that live until the page is
stored. With the default thresholds the collector runs every 700 allocations and, each time the
young objects survive, walks them again, and its full collections walk every object the
imports created (SQLAlchemy, pydantic): 20-25% of the CPU of parsing and mapping a page. Those
records hold no reference cycles, so reference counting frees them; the collector only has to
run now and then.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 100)
M_ARENA_MAX = -8  # glibc's mallopt parameter


def one_malloc_arena() -> None:
    """Have glibc serve every thread from one malloc arena. A sync parses the next page in a
    read-ahead thread and frees it in the main one: with an arena per thread, each keeps its
    own high-water mark of page-sized strings, 6 MiB more peak RSS in a 100k-ticket sync (the
    threads never allocate at the same moment, so sharing one costs no contention that shows).
    `pmsync run` sets it before its workers start: each worker thread derives and plans in
    turn, and with an arena each, four arenas held 115 MiB between them at 20k tickets idle.
    Nothing happens without glibc."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


_depth = 0  # bulk_allocation blocks open (nested, or in several threads)
_depth_lock = threading.Lock()
_previous: tuple[int, int, int] = (700, 10, 10)
_was_frozen = False  # someone else froze objects first (the web view's snapshot keeper)


@contextmanager
def bulk_allocation(*, one_arena: bool = True) -> Iterator[None]:
    """Freeze what exists now (modules, configuration, a daemon's caches) out of the
    collector's sight and collect the young generation rarely; restored (and unfrozen, unless
    something was frozen before, such as the web view's snapshot) when the outermost block
    ends. Threads started inside share one malloc arena
    (`one_malloc_arena`), which stays so, unless `one_arena` is False. A derivation in a
    process that holds millions of objects spent half its time in full collections walking
    them (issue 14)."""
    global _depth, _previous, _was_frozen  # noqa: PLW0603 - the collector's settings are process-wide
    if one_arena:
        one_malloc_arena()
    with _depth_lock:
        if _depth == 0:
            _previous = gc.get_threshold()
            _was_frozen = gc.get_freeze_count() > 0
            gc.freeze()
            gc.set_threshold(*BULK_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_previous)
                if not _was_frozen:  # a freeze made by someone else stays theirs to undo
                    gc.unfreeze()
