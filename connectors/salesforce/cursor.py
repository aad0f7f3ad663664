"""Where an sObject stream stands, and the SOQL condition that reads on from there.

Rows are read ordered by (SystemModstamp, Id). The cursor says which rows may still be
missing from the store:

  * every row after the keyset position (`systemmodstamp`, `id`): rows sharing one
    SystemModstamp across pages are told apart by Id, so none is lost and none loops;
  * every row stamped at or after `since`: the server time at which the last complete read
    started, minus the overlap window. A row committed late with an older SystemModstamp
    (long transactions do that) lands inside that window and is read by the next cycle.

The condition is the union of both, `SystemModstamp >= since OR (SystemModstamp, Id) > position`,
and reduces to `SystemModstamp >= since` when `since` is not after the position. A read that
completes moves `since` forward to its own start minus the overlap; the keyset position
moves with every page. Re-read rows are absorbed by the engine's content hash (no writes).

In a no-change cycle the query returns only rows stamped inside the overlap before the
previous read: one request, unless more than a page of rows changed in that window.

Two optional phases share the cursor: a Bulk API 2.0 first sync (`bulk_*`, result pages are
not ordered, so the job id and result locator are the position), and the periodic re-read of
formula fields (`refreshed_at`, and `refresh_after` = last Id of a re-read in progress).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from pmsync.connectors.salesforce import soql


class SObjectCursor(BaseModel):
    """Position of one sObject stream; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    systemmodstamp: datetime | None = None
    id: str | None = None
    since: datetime | None = None
    bulk_job: str | None = None
    bulk_locator: str | None = None
    bulk_started: datetime | None = None
    refreshed_at: datetime | None = None
    refresh_after: str | None = None

    def incremental_condition(self) -> str | None:
        """The WHERE condition of an incremental read from this cursor."""
        parts: list[str] = []
        if self.since is not None:
            parts.append(f"SystemModstamp >= {soql.datetime_literal(self.since)}")
        position_covered = (
            self.since is not None
            and self.systemmodstamp is not None
            and self.since <= self.systemmodstamp
        )
        if self.systemmodstamp is not None and self.id is not None and not position_covered:
            stamp = soql.datetime_literal(self.systemmodstamp)
            parts.append(f"SystemModstamp > {stamp}")
            parts.append(f"(SystemModstamp = {stamp} AND Id > {soql.string(self.id)})")
        return soql.any_of(parts)

    def after(self, record: dict[str, Any]) -> SObjectCursor:
        """This cursor moved to just after `record` (which carries SystemModstamp and Id)."""
        return self.model_copy(
            update={"systemmodstamp": parse_stamp(record["SystemModstamp"]), "id": record["Id"]}
        )


def parse_stamp(value: Any) -> datetime:
    """A Salesforce dateTime (2024-01-01T00:00:00.000+0000) as an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
