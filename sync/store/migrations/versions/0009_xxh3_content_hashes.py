"""Records' content hashes are XXH3-128 (they were BLAKE2b): recompute the stored ones.

A sync counts a record changed when the hash of what it read differs from the stored one.
Left as they were, every stored hash would differ from the new function's once: the next sync
would rewrite every record it read and journal each one, and the next derivation would take
every ticket for changed. So each stored hash is recomputed here from the stored texts (the
very bytes a sync hashes: what is stored is what was hashed), and the records then read
unchanged count as unchanged.

The journal must not take these rewrites for changes either: on SQLite its triggers fire only
while `derive_state` holds the `journal` row, which is set aside for the rewrite (the upgrade
holds the write lock, so no other writer misses it); PostgreSQL's trigger is disabled for the
rewrite, inside the transaction (ALTER TABLE holds other writers off until the commit).

The rollups' content hashes are left as they are (they keep BLAKE2b).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from pmsync.sync.store.store import blake2b_content_hash, content_hash

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    _rehash(content_hash)


def downgrade() -> None:
    _rehash(blake2b_content_hash)


def _rehash(digest_of: Callable[[str, str], str]) -> None:
    """Recompute every stored record's content hash with `digest_of`, the journal paused."""
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("ALTER TABLE records DISABLE TRIGGER records_journal"))
        _rehash_records(connection, digest_of)
        connection.execute(sa.text("ALTER TABLE records ENABLE TRIGGER records_journal"))
        return
    journal = connection.execute(
        sa.text("SELECT value FROM derive_state WHERE name = 'journal'")
    ).scalar()
    if journal is not None:
        connection.execute(sa.text("DELETE FROM derive_state WHERE name = 'journal'"))
    _rehash_records(connection, digest_of)
    if journal is not None:
        connection.execute(
            sa.text("INSERT INTO derive_state (name, value) VALUES ('journal', :value)"),
            {"value": journal},
        )


def _rehash_records(connection: sa.Connection, digest_of: Callable[[str, str], str]) -> None:
    """Rows in primary-key order, a batch at a time (keyset paging: no cursor stays open on
    the table being updated, and memory holds one batch)."""
    select = "SELECT connector, stream, key, raw, unified, content_hash FROM records "
    order = " ORDER BY connector, stream, key LIMIT :batch"
    first = sa.text(select + order)
    following = sa.text(
        select + "WHERE (connector, stream, key) > (:connector, :stream, :key)" + order
    )
    write = sa.text(
        "UPDATE records SET content_hash = :digest "
        "WHERE connector = :connector AND stream = :stream AND key = :key"
    )
    after: dict[str, str] | None = None
    while True:
        if after is None:
            rows = connection.execute(first, {"batch": _BATCH}).all()
        else:
            rows = connection.execute(following, {**after, "batch": _BATCH}).all()
        if not rows:
            return
        changed = []
        for connector, stream, key, raw, unified, stored in rows:
            digest = digest_of(raw, unified)
            if digest != stored:
                changed.append(
                    {"digest": digest, "connector": connector, "stream": stream, "key": key}
                )
        if changed:
            connection.execute(write, changed)
        last = rows[-1]
        after = {"connector": last[0], "stream": last[1], "key": last[2]}
