"""Records with raw and unified payloads, stream state and cursors, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pmsync.sync.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
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
    )
    op.create_index("ix_records_entity", "records", ["entity"])
    op.create_table(
        "stream_state",
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
    )
    op.create_table(
        "dead_letters",
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
    )
    op.create_index(
        "ix_dead_letters_record", "dead_letters", ["connector", "stream", "record_key"]
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("stream_state")
    op.drop_index("ix_records_entity", "records")
    op.drop_table("records")
