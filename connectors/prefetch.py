"""Read-ahead for paged APIs: fetch page N+1 while the engine maps and commits page N.

Network and server time then overlap with our own work, which matters most against real APIs
whose pages take hundreds of milliseconds. Only one request is ever in flight, so request
budgets and the API's ordering rules hold; an error of the prefetched request surfaces when that
page is asked for, after the previous page has been committed.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def read_ahead(
    first: Callable[[], T],
    following: Callable[[T], Callable[[], T] | None],
    *,
    name: str = "prefetch",
) -> Generator[T, None, None]:
    """Yield `first()`, then each next result while the one after it is being fetched.

    `following(result)` returns the call that fetches the next result, or None at the end.
    Reading ahead starts once the consumer comes back for a second result, so a caller that
    wants one page (a preview, a no-change cycle) costs one request.
    """
    result = first()
    fetch = following(result)
    yield result
    if fetch is None:
        return
    # The fetching thread sees the caller's context (log fields, metrics attribution, budgets).
    context = contextvars.copy_context()
    fetchers: set[int] = set()  # the pool's thread, once it ran a fetch

    def run(call: Callable[[], T]) -> T:
        fetchers.add(threading.get_ident())
        return context.copy().run(call)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        pending: Future[T] | None = pool.submit(run, fetch)
        while pending is not None:
            result = pending.result()
            fetch = following(result)
            pending = pool.submit(run, fetch) if fetch is not None else None
            yield result
    finally:
        # Closed by its consumer: wait for the request in flight, so none outlives the read.
        # Closed on the fetching thread itself (the generator garbage-collected there): that
        # thread cannot wait for itself; it ends when its call returns.
        pool.shutdown(wait=threading.get_ident() not in fetchers, cancel_futures=True)
