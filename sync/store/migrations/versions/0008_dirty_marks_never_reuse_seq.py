"""Write-back marks keep their sequence numbers for good (SQLite AUTOINCREMENT).

A connector's write-back reads the marks it has to plan (their `seq`s), plans, applies, and
deletes those `seq`s. Meanwhile another connector's derivation may replace the connector's
marks by one "every target" mark. On SQLite an INTEGER PRIMARY KEY without AUTOINCREMENT
reuses the largest deleted rowid, so that new mark could take a `seq` the write-back still
held, and be deleted with the old marks it replaced: figures derived after the plan was made
were never written (until some later change). AUTOINCREMENT never hands a rowid out twice.
PostgreSQL's sequences never do either: nothing changes there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "writeback_dirty", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "writeback_dirty", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
