"""The connectors' discovery cache, kept in the store so every process shares it.

`pmsync sync`, `plan` and `apply` run as separate processes; without a shared cache each would
ask Salesforce for its describes and Jira for its server info and field catalogue again. An
entry is reused while it is younger than the connector's `discovery_cache`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from pmsync.sync.store.schema import discovery_cache
from pmsync.sync.store.store import Store, dumps, utcnow


class StoreDiscoveryCache:
    """`connectors.base.DiscoveryCache` on the store's `discovery_cache` table."""

    def __init__(self, store: Callable[[], Store | None]) -> None:
        # Opened on first use: a connector that never asks costs nothing. None: no store to
        # keep a cache in (a read-only command before the first sync), so nothing is kept.
        self._store = store

    def get(self, connector: str, name: str, max_age: timedelta) -> Any | None:
        store = self._store()
        if store is None:
            return None
        with store.engine.connect() as connection:
            row = connection.execute(
                sa.select(discovery_cache.c.body, discovery_cache.c.fetched_at).where(
                    discovery_cache.c.connector == connector, discovery_cache.c.name == name
                )
            ).first()
        if row is None or utcnow() - row.fetched_at > max_age:
            return None
        return orjson.loads(row.body)

    def put(self, connector: str, name: str, value: Any) -> None:
        body, now = dumps(value), utcnow()
        store = self._store()
        if store is None:
            return
        with store.transaction() as connection:
            updated = connection.execute(
                sa.update(discovery_cache)
                .where(discovery_cache.c.connector == connector, discovery_cache.c.name == name)
                .values(body=body, fetched_at=now)
            )
            if not updated.rowcount:
                connection.execute(
                    sa.insert(discovery_cache).values(
                        connector=connector, name=name, body=body, fetched_at=now
                    )
                )

    def forget(self, connector: str, name: str) -> None:
        store = self._store()
        if store is None:
            return
        with store.transaction() as connection:
            connection.execute(
                sa.delete(discovery_cache).where(
                    discovery_cache.c.connector == connector, discovery_cache.c.name == name
                )
            )
