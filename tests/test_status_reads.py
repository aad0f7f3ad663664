"""`pmsync status` reads a current store through its driver alone (sqlite3 or psycopg, no
SQLAlchemy), with the same SQL the `Store` runs: both must read the same rows the same way, on
SQLite and PostgreSQL; an older store is still upgraded first, as before."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from pmsync.app.cli import cli
from pmsync.sync.store import store as st
from pmsync.sync.store import tasks
from pmsync.sync.store.presence import (
    current_store_connection,
    head_revision,
    plain_sqlite_database,
    psycopg_arguments,
)
from pmsync.sync.store.rows import DriverReader, StreamCounts, StreamState, TaskState
from pmsync.sync.store.store import RecordRow, Store
from tests.conftest import write_config
from tests.store_support import downgrade_one_step
from tests.test_startup_imports import PROBE

SYNCED = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "a-token-for-tests")


def record(key: str) -> RecordRow:
    raw = st.dumps({"id": key})
    return RecordRow(key, "feedback", raw, raw, st.content_hash(raw, raw))


def fill(store: Store) -> None:
    """Two streams' state, live and deleted records, dead letters and a failing write-back."""
    with store.transaction() as c:
        st.write_records(c, "zendesk", "tickets", [record(k) for k in "abc"], SYNCED)
        st.tombstone(c, "zendesk", "tickets", ["c"], SYNCED)
        st.update_stream_state(
            c,
            "zendesk",
            "tickets",
            status="ok",
            cursor='{"start_time": 1700000000}',
            last_success_at=SYNCED,
            failures=0,
        )
        st.update_stream_state(
            c, "zendesk", "users", status="failing", failures=3, last_error="HTTP 503"
        )
        for key, resolved in (("x", False), ("y", False), ("z", True)):
            st.add_dead_letter(
                c,
                connector="zendesk",
                stream="users",
                key=key,
                field="email",
                reason="not an e-mail",
                payload="{}",
                run_id=None,
                now=SYNCED,
            )
            if resolved:
                st.resolve_dead_letters(c, "zendesk", "users", [key], SYNCED)
        tasks.record_failure(
            c,
            "zendesk",
            "writeback",
            error="HTTP 422",
            now=SYNCED,
            failures=2,
            next_attempt_at=SYNCED + timedelta(minutes=5),
        )


def config_with_users(tmp_path: Path, store_url: str) -> Path:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", store_url=store_url)
    text = config.read_text().replace(
        'type = "zendesk"', 'type = "zendesk"\nstreams = ["tickets", "users"]'
    )
    config.write_text(text)
    return config


def test_the_driver_reads_what_the_store_reads(store_url: str) -> None:
    store = Store(store_url)
    fill(store)
    connection = current_store_connection(store_url)
    assert connection is not None
    try:
        direct = DriverReader(connection)
        assert direct.stream_states() == store.stream_states()
        assert direct.stream_counts() == store.stream_counts()
        assert direct.task_states() == store.task_states()
    finally:
        connection.close()
    tickets, users = store.stream_states()
    assert isinstance(tickets, StreamState)
    assert (tickets.stream, tickets.status, tickets.last_success_at) == ("tickets", "ok", SYNCED)
    assert (users.status, users.failures, users.last_error) == ("failing", 3, "HTTP 503")
    assert store.stream_counts() == {
        ("zendesk", "tickets"): StreamCounts(live=2, deleted=1),
        ("zendesk", "users"): StreamCounts(dead_letters=2),
    }
    [writeback] = store.task_states()
    assert writeback == TaskState(
        "zendesk",
        "writeback",
        "",
        last_attempt_at=SYNCED,
        failures=2,
        last_error="HTTP 422",
        last_error_at=SYNCED,
        next_attempt_at=SYNCED + timedelta(minutes=5),
    )
    store.close()


def test_status_shows_what_the_store_holds(tmp_path: Path, store_url: str) -> None:
    store = Store(store_url)
    fill(store)
    store.close()
    config = config_with_users(tmp_path, store_url)
    result = CliRunner().invoke(cli, ["-c", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["stream"]: row for row in json.loads(result.stdout)}
    tickets, users = rows["zendesk.tickets"], rows["zendesk.users"]
    assert (tickets["status"], tickets["records"], tickets["tombstones"]) == ("ok", 2, 1)
    assert tickets["last_success_at"] == SYNCED.isoformat()
    assert tickets["cursor"] == '{"start_time": 1700000000}'
    assert (users["status"], users["failures"], users["dead_letters"]) == ("failing", 3, 2)
    assert users["writeback"]["last_error"] == "HTTP 422"
    table = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert table.exit_code == 0, table.output
    assert "failing (3x)" in table.stdout
    assert re.search(r"zendesk write-back +failing \(2x\)", table.stdout)
    assert "start_time=1700000000" in table.stdout


def test_status_upgrades_an_older_store_first(tmp_path: Path, store_url: str) -> None:
    store = Store(store_url)
    fill(store)
    downgrade_one_step(store)
    assert store.schema_revision() != head_revision()
    store.close()
    assert current_store_connection(store_url) is None  # read through a Store: it upgrades
    config = config_with_users(tmp_path, store_url)
    result = CliRunner().invoke(cli, ["-c", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["stream"]: row for row in json.loads(result.stdout)}
    assert rows["zendesk.tickets"]["records"] == 2
    again = Store(store_url, migrate=False)
    assert again.schema_revision() == head_revision()
    again.close()


def test_status_needs_no_sqlalchemy_on_either_backend(tmp_path: Path, store_url: str) -> None:
    Store(store_url).close()
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", store_url=store_url)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "-c", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PMSYNC_TEST_ZENDESK_TOKEN": "x"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads("\n".join(lines[:-1]))[0]["stream"] == "zendesk.tickets"
    loaded = set(json.loads(lines[-1].removeprefix("MODULES ")))
    assert "sqlalchemy" not in loaded
    assert ("psycopg" in loaded) == store_url.startswith("postgresql")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dt_1",
        "postgresql+psycopg://pm%40sync:p%2Fw%3Ad@[::1]:6432/my%20db?connect_timeout=2",
        "postgresql+psycopg://db.example.com/pmsync?sslmode=require&application_name=x",
        "postgresql+psycopg:///pmsync",
        "postgresql+psycopg://",
    ],
)
def test_psycopg_is_given_what_sqlalchemy_would_give_it(url: str) -> None:
    parsed = make_url(url)
    _args, expected = parsed.get_dialect()().create_connect_args(parsed)
    assert psycopg_arguments(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",  # SQLAlchemy's default PostgreSQL driver is not psycopg
        "postgresql+psycopg://u@h/db?host=a&host=b",  # several hosts
        "postgresql+psycopg://u@h:port/db",
        "mysql://u@h/db",
    ],
)
def test_other_urls_are_left_to_sqlalchemy(url: str) -> None:
    assert psycopg_arguments(url) is None
    assert plain_sqlite_database(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/pmsync/pmsync.db",
        "sqlite+pysqlite:///rel/my%20store.db",
        "sqlite:///:memory:",
    ],
)
def test_a_sqlite_path_is_read_as_sqlalchemy_reads_it(url: str) -> None:
    expected: Any = make_url(url).database
    assert plain_sqlite_database(url) == expected
