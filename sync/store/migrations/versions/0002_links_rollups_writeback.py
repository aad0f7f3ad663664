"""Links, rollups, the write-back ledger and intents, loop closures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pmsync.sync.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("ticket_ref", sa.String(300), primary_key=True),
        sa.Column("target_ref", sa.String(300), primary_key=True),
        sa.Column("rule", sa.String(50), nullable=False),
        sa.Column("linked_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_links_target", "links", ["kind", "target_ref"])
    op.create_table(
        "rollups",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("issue_ref", sa.String(300), primary_key=True),
        sa.Column("issue_key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("provenance", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("computed_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "writeback_ledger",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("object_name", sa.String(100), primary_key=True),
        sa.Column("target_key", sa.String(255), primary_key=True),
        sa.Column("field", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("remote_before", sa.Text, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "writeback_intents",
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
    )
    op.create_index("ix_writeback_intents_state", "writeback_intents", ["state"])
    op.create_table(
        "loop_closures",
        sa.Column("issue_ref", sa.String(300), primary_key=True),
        sa.Column("ticket_ref", sa.String(300), primary_key=True),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("marker", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("done_at", UtcDateTime, nullable=True),
    )


def downgrade() -> None:
    for table in ("loop_closures", "writeback_intents", "writeback_ledger", "rollups"):
        op.drop_table(table)
    op.drop_index("ix_links_target", "links")
    op.drop_table("links")
