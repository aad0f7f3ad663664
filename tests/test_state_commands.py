"""`pmsync state get|set|reset`: show, set or clear a stream's cursor, with a confirmation,
refused while a daemon owns the connector; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from pmsync.app.cli import cli
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config


@pytest.fixture
def config(
    tmp_path: Path, store_url: str, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> Path:
    path = write_config(tmp_path, zendesk_url=small_zendesk.base_url, store_url=store_url)
    synced = invoke(path, "sync", "--once", "--json")
    assert synced.exit_code == 0, synced.output
    return path


def invoke(config: Path, *args: str, answer: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config), *args], input=answer)


def state(config: Path, stream: str) -> dict[str, Any]:
    result = invoke(config, "state", "get", stream, "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def read_again(config: Path, stream: str) -> int:
    result = invoke(config, "sync", "--once", "--stream", stream, "--no-sweep", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    return int(row["records_read"])


def test_get_shows_the_cursor_the_last_sync_stored(config: Path) -> None:
    got = state(config, "zendesk.tickets")
    assert got["stream"] == "zendesk.tickets"
    assert got["status"] == "ok"
    assert got["records"] == 300 - got["tombstones"]
    assert set(got["cursor"]) == {"start_time", "after_cursor"}
    assert got["cursor"]["after_cursor"]
    text = invoke(config, "state", "get", "zendesk.tickets").stdout
    assert got["cursor"]["after_cursor"] in text


def test_reset_asks_first_then_the_next_sync_reads_everything_again(config: Path) -> None:
    assert read_again(config, "zendesk.tickets") == 0  # caught up
    declined = invoke(config, "state", "reset", "zendesk.tickets", answer="n\n")
    assert declined.exit_code == 1
    assert state(config, "zendesk.tickets")["cursor"] is not None
    done = invoke(config, "state", "reset", "zendesk.tickets", answer="y\n")
    assert done.exit_code == 0, done.output
    assert "Clear zendesk.tickets's cursor" in done.output
    assert state(config, "zendesk.tickets")["cursor"] is None
    assert read_again(config, "zendesk.tickets") == 300
    assert (
        state(config, "zendesk.tickets")["records"] + state(config, "zendesk.tickets")["tombstones"]
        == 300
    )  # nothing duplicated


def test_set_validates_the_cursor_against_the_stream_and_stores_it(config: Path) -> None:
    wrong = invoke(config, "state", "set", "zendesk.organizations", '{"start_time": "soon"}')
    assert wrong.exit_code == 2
    assert "CURSOR: not a cursor of zendesk.organizations: start_time:" in wrong.output
    assert "(its fields: start_time)" in wrong.output
    not_json = invoke(config, "state", "set", "zendesk.organizations", "start_time=1")
    assert not_json.exit_code == 2
    done = invoke(config, "state", "set", "zendesk.organizations", '{"start_time": 0}', "--yes")
    assert done.exit_code == 0, done.output
    assert state(config, "zendesk.organizations")["cursor"] == {"start_time": 0}
    assert read_again(config, "zendesk.organizations") == 20  # from the epoch: all of them


def test_a_stream_name_must_name_one_stream(config: Path) -> None:
    result = invoke(config, "state", "reset", "zendesk", "--yes")
    assert result.exit_code == 2
    assert "names 4 streams" in result.output
    assert state(config, "zendesk.tickets")["cursor"] is not None


def test_refused_while_a_daemon_owns_the_connector(config: Path, store_url: str) -> None:
    from pmsync.app.daemon.leases import make_leases

    engine = sa.create_engine(store_url)
    daemon = make_leases(engine, "daemon", 5.0)
    assert daemon.try_acquire("zendesk", total=1)
    try:
        before = state(config, "zendesk.tickets")["cursor"]
        result = invoke(config, "state", "reset", "zendesk.tickets", "--yes")
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert "daemon" in result.stderr or "another pmsync process" in result.stderr
        assert state(config, "zendesk.tickets")["cursor"] == before
    finally:
        daemon.close()
        engine.dispose()
    assert invoke(config, "state", "reset", "zendesk.tickets", "--yes").exit_code == 0


def test_a_success_ends_a_run_of_failures_in_the_same_write_that_says_ok(
    config: Path, store_url: str
) -> None:
    """A daemon's failed runs are counted in the stream's state; the next successful read
    clears them together with the error, so the state never reads 'ok' with 13 failures."""
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE stream_state SET status = 'failed', failures = 13, "
                    "next_attempt_at = :later, last_error = '503' "
                    "WHERE connector = 'zendesk' AND stream = 'tickets'"
                ),
                {"later": "2099-01-01 00:00:00"},
            )
        failing = state(config, "zendesk.tickets")
        assert (failing["status"], failing["failures"]) == ("failed", 13)
        read_again(config, "zendesk.tickets")
        healed = state(config, "zendesk.tickets")
        assert (healed["status"], healed["failures"]) == ("ok", 0)
        assert healed["next_attempt_at"] is None
        assert healed["last_error"] is None
    finally:
        engine.dispose()
