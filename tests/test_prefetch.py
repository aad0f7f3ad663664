"""Read-ahead keeps one request in flight and never runs past the end."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pmsync.connectors.prefetch import read_ahead


def test_reads_ahead_one_page_after_the_first() -> None:
    fetched: list[int] = []
    lock = threading.Lock()
    fourth_fetched = threading.Event()

    def fetch(n: int) -> int:
        with lock:
            fetched.append(n)
        if n == 4:
            fourth_fetched.set()
        return n

    pages = read_ahead(lambda: fetch(1), lambda n: (lambda: fetch(n + 1)) if n < 4 else None)
    assert next(pages) == 1
    assert fetched == [1]  # nothing fetched ahead for a caller that wants one page
    assert next(pages) == 2
    assert next(pages) == 3
    # page 4 is fetched while page 3 is with the consumer, without being asked for
    assert fourth_fetched.wait(timeout=10)
    assert list(pages) == [4]
    assert fetched == [1, 2, 3, 4]


def test_an_error_of_the_next_page_surfaces_when_it_is_asked_for() -> None:
    def boom() -> int:
        raise TimeoutError("page 3")

    pages = read_ahead(lambda: 1, lambda n: (lambda: n + 1) if n == 1 else boom)
    assert next(pages) == 1
    assert next(pages) == 2
    with pytest.raises(TimeoutError, match="page 3"):
        next(pages)


def test_a_reader_closed_on_its_own_fetching_thread_does_not_wait_for_itself() -> None:
    # What happens when the reader is garbage-collected on the thread that fetches for it (the
    # engine stopped mid-read and the last reference went away there): it is closed on that
    # thread, which cannot join itself.
    consumer_done = threading.Event()
    closed = threading.Event()
    errors: list[BaseException] = []

    def close_from_the_fetching_thread() -> int:
        consumer_done.wait(10)
        try:
            pages.close()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever escaped
            errors.append(exc)
        closed.set()
        return 3

    def following(n: int) -> Callable[[], int] | None:
        return close_from_the_fetching_thread if n == 2 else (lambda: n + 1)

    pages = read_ahead(lambda: 1, following)
    assert [next(pages), next(pages)] == [1, 2]  # the third fetch is now on the pool's thread
    consumer_done.set()
    assert closed.wait(10)
    assert errors == []
    with pytest.raises(StopIteration):
        next(pages)
