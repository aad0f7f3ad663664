"""A SQLite store is copied before its schema is upgraded at start."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from pmsync.errors import ConfigError
from pmsync.sync.store import store as st
from pmsync.sync.store.store import Store, utcnow
from tests.store_support import alembic_config, downgrade_one_step


def test_an_upgrade_backs_the_file_up_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pmsync.db'}"
    store = Store(url)
    with store.transaction() as connection:
        st.save_cursor(connection, "zendesk", "tickets", '{"after_cursor": "abc"}', utcnow())
    downgrade_one_step(store)
    old_revision = store.schema_revision()
    store.close()

    upgraded = Store(url)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert upgraded.schema_revision() == head
    backups = list(tmp_path.glob(f"pmsync.db.before-{head}-*"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (old_revision,)
        assert copy.execute("SELECT cursor FROM stream_state").fetchone() == (
            '{"after_cursor": "abc"}',
        )
    upgraded.close()

    Store(url).close()  # already at head: no second copy
    assert len(list(tmp_path.glob("pmsync.db.before-*"))) == 1


def test_a_new_store_needs_no_backup(tmp_path: Path) -> None:
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").close()
    assert list(tmp_path.glob("pmsync.db.before-*")) == []


def test_a_failed_backup_stops_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pmsync.db'}"
    store = Store(url)
    downgrade_one_step(store)
    revision = store.schema_revision()
    store.close()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    now = datetime.now(UTC)
    for offset in range(
        -2, 30
    ):  # occupy the copy's name for the next seconds: it cannot be written
        stamp = (now + timedelta(seconds=offset)).strftime("%Y%m%dT%H%M%SZ")
        (tmp_path / f"pmsync.db.before-{head}-{stamp}").mkdir()
    with pytest.raises(ConfigError, match="backup failed"):
        Store(url)
    assert Store(url, migrate=False).schema_revision() == revision  # nothing was migrated


def test_new_stream_state_columns_exist_on_both_backends(store_url: str) -> None:
    store = Store(store_url)
    with store.transaction() as connection:
        st.update_stream_state(
            connection, "zendesk", "tickets", failures=3, next_attempt_at=utcnow(), owner="a@h:1"
        )
    state = store.stream_state("zendesk", "tickets")
    assert state is not None
    assert (state.failures, state.owner) == (3, "a@h:1")
    assert state.next_attempt_at is not None
    store.close()
