"""The collector's settings during bulk work: restored afterwards, and a freeze made by someone
else (the web view's snapshot keeper) left in place."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pmsync.gcpolicy import BULK_THRESHOLDS, bulk_allocation


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_bulk_allocation_restores_the_thresholds_and_unfreezes_what_it_froze() -> None:
    before = gc.get_threshold()
    with bulk_allocation(one_arena=False):
        assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_freeze_count() > 0
        with bulk_allocation(one_arena=False):  # nested: the outermost block restores
            pass
        assert gc.get_threshold() == BULK_THRESHOLDS
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("unfrozen")
def test_a_freeze_made_before_bulk_work_stays() -> None:
    gc.freeze()  # as the web view's keeper does after building a snapshot
    frozen = gc.get_freeze_count()
    assert frozen > 0
    with bulk_allocation(one_arena=False):
        pass
    assert gc.get_freeze_count() >= frozen
