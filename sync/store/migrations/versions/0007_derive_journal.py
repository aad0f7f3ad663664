"""A journal of changed records, so derive and write-back work on what changed.

`derive_changes` gets a row whenever a record is stored, changed, revived or tombstoned
(triggers on `records`, so every writer is covered without touching the write path's code);
a derivation reads it, re-derives only the issues those records affect and deletes the rows
it consumed in the same transaction. `derive_state` keeps what the last derivation assumed
(a fingerprint of the link, rollup and score rules, and the day, which usage windows read);
`derive_inputs` keeps, per account and issue, the fields linking reads, so a change to other
fields (an account's ARR) is known not to move any link. `writeback_dirty` lists, per
connector, targets whose figures or remote values may have changed since its last write-back
('*': all of them), so each connector plans only those.

A later migration that rebuilds `records` (SQLite batch mode) drops these triggers and must
create them again (`create_triggers`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# SQLite journals once a derivation has asked for it (a `journal` row in derive_state, written
# before the first derivation reads anything): a store's first sync, all inserts, costs no
# journal. PostgreSQL always journals (a writer's statement could miss a row committed meanwhile).
_SQLITE = (
    """CREATE TRIGGER records_journal_insert AFTER INSERT ON records
    WHEN EXISTS (SELECT 1 FROM derive_state WHERE name = 'journal')
    BEGIN
        INSERT INTO derive_changes (connector, stream, key, entity)
        VALUES (NEW.connector, NEW.stream, NEW.key, NEW.entity);
    END""",
    """CREATE TRIGGER records_journal_update AFTER UPDATE ON records
    WHEN (OLD.content_hash IS NOT NEW.content_hash OR OLD.deleted_at IS NOT NEW.deleted_at
        OR OLD.entity IS NOT NEW.entity)
        AND EXISTS (SELECT 1 FROM derive_state WHERE name = 'journal')
    BEGIN
        INSERT INTO derive_changes (connector, stream, key, entity)
        VALUES (NEW.connector, NEW.stream, NEW.key, NEW.entity);
    END""",
)
_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION pmsync_journal_record() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' OR OLD.content_hash IS DISTINCT FROM NEW.content_hash
           OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
           OR OLD.entity IS DISTINCT FROM NEW.entity THEN
            INSERT INTO derive_changes (connector, stream, key, entity)
            VALUES (NEW.connector, NEW.stream, NEW.key, NEW.entity);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER records_journal AFTER INSERT OR UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION pmsync_journal_record()""",
)


def create_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRESQL if dialect == "postgresql" else _SQLITE:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "derive_changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("entity", sa.String(50), nullable=False),
    )
    op.create_table(
        "derive_state",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "derive_inputs",
        sa.Column("ref", sa.String(300), primary_key=True),
        sa.Column("entity", sa.String(50), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_table(
        "writeback_dirty",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ref", sa.String(300), nullable=False),
        sa.Index("ix_writeback_dirty_connector", "connector"),
    )
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS records_journal ON records")
        op.execute("DROP FUNCTION IF EXISTS pmsync_journal_record()")
    else:
        op.execute("DROP TRIGGER IF EXISTS records_journal_insert")
        op.execute("DROP TRIGGER IF EXISTS records_journal_update")
    op.drop_table("writeback_dirty")
    op.drop_table("derive_inputs")
    op.drop_table("derive_state")
    op.drop_table("derive_changes")
