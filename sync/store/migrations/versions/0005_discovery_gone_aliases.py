"""Cached discovery, write-back targets found gone, and old issue keys.

`stream_state.refresh_started_at` changes meaning: it was the start of a full refresh (which
tombstoned what it did not see), it is now the start of a census read (a read that lists every
live record). A value left by an interrupted refresh of an earlier version is cleared, so no
read takes it for a census.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pmsync.sync.store.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE stream_state SET refresh_started_at = NULL")
    op.create_table(
        "discovery_cache",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("fetched_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "writeback_gone",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("object_name", sa.String(100), primary_key=True),
        sa.Column("target_key", sa.String(255), primary_key=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("gone_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "issue_key_aliases",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("issue_id", sa.String(100), nullable=True),
        sa.Column("checked_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("issue_key_aliases")
    op.drop_table("writeback_gone")
    op.drop_table("discovery_cache")
