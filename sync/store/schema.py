"""The store's tables. One schema for SQLite and PostgreSQL; Alembic migrations create it.

Payloads are kept as JSON text, serialized once: the same bytes are hashed and stored, so an
unchanged record is recognised without parsing anything back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from pmsync.sync.store.rows import utc


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return utc(value)


metadata = sa.MetaData()

records = sa.Table(
    "records",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("entity", sa.String(50), nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("unified", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_seen_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Index("ix_records_entity", "entity"),
)

stream_state = sa.Table(
    "stream_state",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=True),
    sa.Column("cursor_updated_at", UtcDateTime, nullable=True),
    sa.Column("status", sa.String(20), nullable=False, server_default="new"),
    sa.Column("last_attempt_at", UtcDateTime, nullable=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", UtcDateTime, nullable=True),
    sa.Column("last_sweep_at", UtcDateTime, nullable=True),
    sa.Column("refresh_started_at", UtcDateTime, nullable=True),
    sa.Column("last_run_id", sa.String(40), nullable=True),
    # The daemon's schedule: consecutive failed runs, when it tries again, which replica runs it.
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("owner", sa.String(200), nullable=True),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(100), nullable=False),
    sa.Column("stream", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(255), nullable=True),
    sa.Column("field", sa.String(200), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Index("ix_dead_letters_record", "connector", "stream", "record_key"),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("ticket_ref", sa.String(300), primary_key=True),
    sa.Column("target_ref", sa.String(300), primary_key=True),
    sa.Column("rule", sa.String(50), nullable=False),
    sa.Column("linked_at", UtcDateTime, nullable=False),
    sa.Index("ix_links_target", "kind", "target_ref"),
)

rollups = sa.Table(
    "rollups",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("issue_ref", sa.String(300), primary_key=True),
    sa.Column("issue_key", sa.String(100), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("provenance", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("computed_at", UtcDateTime, nullable=False),
)

writeback_ledger = sa.Table(
    "writeback_ledger",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("object_name", sa.String(100), primary_key=True),
    sa.Column("target_key", sa.String(255), primary_key=True),
    sa.Column("field", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("remote_before", sa.Text, nullable=True),
    sa.Column("written_at", UtcDateTime, nullable=False),
)

writeback_intents = sa.Table(
    "writeback_intents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.String(40), nullable=False),
    sa.Column("connector", sa.String(100), nullable=False),
    sa.Column("object_name", sa.String(100), nullable=False),
    sa.Column("target_key", sa.String(255), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("field", sa.String(200), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("done_at", UtcDateTime, nullable=True),
    sa.Index("ix_writeback_intents_state", "state"),
)

loop_closures = sa.Table(
    "loop_closures",
    metadata,
    sa.Column("issue_ref", sa.String(300), primary_key=True),
    sa.Column("ticket_ref", sa.String(300), primary_key=True),
    sa.Column("reason", sa.String(50), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("marker", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("done_at", UtcDateTime, nullable=True),
)

# What a connector discovered (a describe, a field catalogue, server info), reused for a while
# so that each process does not ask again: `connectors.base.DiscoveryCache`, kept in the store.
discovery_cache = sa.Table(
    "discovery_cache",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("fetched_at", UtcDateTime, nullable=False),
)

# Write-back targets an API answered 404 for: not written again until a read sees them anew.
writeback_gone = sa.Table(
    "writeback_gone",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("object_name", sa.String(100), primary_key=True),
    sa.Column("target_key", sa.String(255), primary_key=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("gone_at", UtcDateTime, nullable=False),
)

# Issue keys tickets name that are no issue's current key, as the issue tracker resolved them
# (an old key of a moved issue -> its id; None: no such issue). Looked up once per key.
issue_key_aliases = sa.Table(
    "issue_key_aliases",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("issue_id", sa.String(100), nullable=True),
    sa.Column("checked_at", UtcDateTime, nullable=False),
)

# Replicas on PostgreSQL (`app/daemon/pg_leases.py`): who runs each connector, until when (the
# database's clock), and the epoch that a takeover increments. A replica's commits check, in the
# same transaction, that it still holds the epoch it started with: a stale holder commits nothing.
connector_leases = sa.Table(
    "connector_leases",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("holder_pid", sa.Integer, nullable=True),  # the holder's lease session
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# The live replicas, each renewing its row with its leases: the fair share divides by them.
daemon_replicas = sa.Table(
    "daemon_replicas",
    metadata,
    sa.Column("replica", sa.String(100), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# What the daemon did besides reading, per connector: write-back ("writeback", stream "") and
# sweeps ("sweep", per stream). `pmsync status` and /readyz show it.
task_state = sa.Table(
    "task_state",
    metadata,
    sa.Column("connector", sa.String(100), primary_key=True),
    sa.Column("task", sa.String(20), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("last_attempt_at", UtcDateTime, nullable=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", UtcDateTime, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
)

# Records stored, changed, revived or tombstoned since the last derivation (filled by triggers
# on `records`, see migration 0007); a derivation consumes the rows it read.
derive_changes = sa.Table(
    "derive_changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(100), nullable=False),
    sa.Column("stream", sa.String(100), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("entity", sa.String(50), nullable=False),
)

# What the last derivation assumed: the rules' fingerprint and the day (usage windows).
derive_state = sa.Table(
    "derive_state",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Per account and issue: a hash of the fields linking reads, as last derived.
derive_inputs = sa.Table(
    "derive_inputs",
    metadata,
    sa.Column("ref", sa.String(300), primary_key=True),
    sa.Column("entity", sa.String(50), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

# Per connector: targets to plan write-back for ('*': every target), until applied cleanly.
writeback_dirty = sa.Table(
    "writeback_dirty",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # issue, ticket, account or '*'
    sa.Column("ref", sa.String(300), nullable=False),
    sa.Index("ix_writeback_dirty_connector", "connector"),
    sqlite_autoincrement=True,  # a seq is never handed out twice (migration 0008)
)
