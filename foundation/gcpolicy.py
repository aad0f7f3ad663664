"""Garbage-collector settings for bulk work: a sync allocates millions of short-lived objects.

A page of a thousand records is some forty thousand dicts and lists that live until the page is
stored. With the default thresholds the collector runs every 700 allocations and, each time the
young objects survive, walks them again, and its full collections walk every object the
imports created (SQLAlchemy, pydantic): 20-25% of the CPU of parsing and mapping a page. Those
records hold no reference cycles, so reference counting frees them; the collector only has to
run now and then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Freeze what exists now (modules, configuration) out of the collector's sight and
    collect the young generation rarely; restored (and unfrozen) on the way out."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
