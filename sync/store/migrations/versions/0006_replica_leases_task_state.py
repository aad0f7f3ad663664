"""Connector leases with an expiry and an epoch, live replicas, write-back and sweep state.

Replicas on PostgreSQL held their connectors by session advisory locks, which a paused process
keeps; a lease row expires by the database's clock unless renewed, and its epoch fences a stale
holder's commits. `task_state` keeps each connector's write-back and sweep outcomes for
`pmsync status` and /readyz. On SQLite the lease tables stay empty (one daemon per file).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pmsync.sync.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_leases",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("holder_pid", sa.Integer, nullable=True),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expires_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "daemon_replicas",
        sa.Column("replica", sa.String(100), primary_key=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "task_state",
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


def downgrade() -> None:
    op.drop_table("task_state")
    op.drop_table("daemon_replicas")
    op.drop_table("connector_leases")
