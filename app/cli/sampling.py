"""A few live records for an interactive command, waiting out the API's rate limits.

`mappings preview` reads the first records of a stream. An API that answers 429 with
Retry-After (an export limited to 10 requests a minute, just used by the daemon) is not an
error there: the command waits as asked, telling the user, and carries on from the last page it
has. The waits are bounded, so a command never hangs for long: past `MAX_WAIT` seconds in all,
or after `ATTEMPTS` tries, the error is shown with the wait the API asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from pmsync.connectors.base import Connector, Record, StreamSpec
from pmsync.errors import RetriableError

MAX_WAIT = 60.0  # seconds waited in all, over every retry
ATTEMPTS = 5  # tries of the same page


def sample_records(
    connector: Connector,
    spec: StreamSpec,
    limit: int,
    *,
    fields: frozenset[str] = frozenset(),
    notify: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[Record]:
    """Up to `limit` records from the start of the stream; retriable failures are waited out."""
    records: list[Record] = []
    cursor: BaseModel | None = None
    waited = 0.0
    failures = 0
    while True:
        try:
            for page in connector.read(spec, cursor, fields=fields):
                records.extend(page.records)
                cursor = page.cursor
                failures = 0
                if len(records) >= limit:
                    return records[:limit]
            return records
        except RetriableError as exc:
            failures += 1
            wait = exc.retry_after if exc.retry_after is not None else 2.0**failures
            if failures >= ATTEMPTS or waited + wait > MAX_WAIT:
                raise RetriableError(
                    f"{exc} (asked to wait {wait:.0f} s; preview waits at most "
                    f"{MAX_WAIT:.0f} s in all, so try again later)",
                    retry_after=exc.retry_after,
                ) from None
            notify(f"{exc}: waiting {wait:.0f} s before trying again")
            sleep(wait)
            waited += wait
