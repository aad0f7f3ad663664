"""Commands that only read never create a store (issue 12, item 7).

`status`, `report`, `links review`, `dead-letters`, `plan`, `state get` and `serve` pointed at a
store that is not there say "no store at ..." and exit 1, leaving no file, folder or table
behind; only `sync`, `run`, `apply` and `demo` create one. `check-config` checks the store URL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config

READ_ONLY = (
    ("status",),
    ("report",),
    ("links", "review"),
    ("dead-letters",),
    ("plan",),
    ("state", "get", "zendesk.tickets"),
    ("serve", "--port", "0"),
)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "a-token-for-tests")


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_mistyped_sqlite_path_is_no_store_and_stays_absent(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "stat" / "pmsync.db"
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", store_url=f"sqlite:///{typo}"
    )
    result = CliRunner().invoke(cli, ["-c", str(config), *command])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: no store at {typo} (store.url in {config}): no such file. `pmsync sync` "
        "creates the store; if the store is elsewhere, fix store.url\n"
    )
    assert not typo.parent.exists()


def test_the_default_store_is_named_as_the_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com")
    config.write_text(config.read_text().replace(f'url = "sqlite:///{tmp_path}/pmsync.db"', ""))
    result = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: no store at {tmp_path / 'pmsync.db'} (the default, as store.url is not set "
        f"in {config}): no such file."
    )
    assert not (tmp_path / "pmsync.db").exists()


def test_a_sqlite_file_without_pmsync_tables_is_no_store_and_is_left_alone(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE notes (body TEXT)"))
    engine.dispose()
    before = other.read_bytes()
    config = write_config(tmp_path, store_url=f"sqlite:///{other}")
    result = CliRunner().invoke(cli, ["-c", str(config), "dead-letters"])
    assert result.exit_code == 1
    assert f"no store at {other} (store.url in {config}): the file holds no pmsync tables" in (
        result.stderr
    )
    assert other.read_bytes() == before


@pytest.mark.postgres
def test_a_postgresql_schema_without_pmsync_tables_is_no_store_and_stays_empty(
    tmp_path: Path, pg_url: str
) -> None:
    schema = pg_url.rsplit("%3D", 1)[1]
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", store_url=pg_url)
    for command in READ_ONLY[:4]:
        result = CliRunner().invoke(cli, ["-c", str(config), *command])
        assert result.exit_code == 1, result.output
        assert (
            f"(store.url in {config}): pmsync's tables are absent (no alembic_version table "
            f"in schema {schema})" in result.stderr
        )
        assert result.stderr.startswith("error: no store at postgresql+psycopg://")
    engine = sa.create_engine(pg_url)
    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names(schema=schema) == []
    engine.dispose()


def test_an_unreachable_postgresql_is_a_problem_of_store_url_in_the_config(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://pmsync:hunter2-pw@127.0.0.1:1/pmsync?connect_timeout=2"
    config = write_config(tmp_path, store_url=url)
    result = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert result.exit_code == 1
    assert f"  {config}: store.url: cannot open the store: " in result.stderr
    assert "<config>" not in result.stderr
    assert "hunter2-pw" not in result.output


def test_a_store_that_cannot_be_created_names_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("in the way")
    config = write_config(tmp_path, store_url=f"sqlite:///{tmp_path / 'afile' / 'pmsync.db'}")
    result = CliRunner().invoke(cli, ["-c", str(config), "sync", "--once"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"  {config}: store.url: cannot create the store (" in result.stderr


def test_previews_and_checks_keep_no_discovery_cache_without_a_store(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    config = str(write_config(tmp_path, zendesk_url=small_zendesk.base_url, page_size=100))
    runner = CliRunner()
    for command in (
        ["check"],
        ["mappings", "preview", "zendesk.tickets", "-n", "1"],
        ["discover", "zendesk", "tickets"],
        ["check-config"],
        ["mappings", "validate"],
    ):
        result = runner.invoke(cli, ["-c", config, *command])
        assert result.exit_code == 0, (command, result.output)
        assert not list(tmp_path.glob("pmsync.db*")), command
    # the commands that write create it, and then the readers read it
    assert runner.invoke(cli, ["-c", config, "sync", "--once"]).exit_code == 0
    status = json.loads(runner.invoke(cli, ["-c", config, "status", "--json"]).stdout)
    assert {row["status"] for row in status} == {"ok"}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://pmsync@db/pmsync", "the store is SQLite or PostgreSQL, not 'mysql'"),
        ("postgresql+nosuch://pmsync@db/pmsync", "'nosuch' is no postgresql driver"),
        ("postgresql+asyncpg://pmsync@db/pmsync", "the postgresql driver 'asyncpg' is not"),
        ("pmsync.db", "not a database URL"),
    ],
)
def test_check_config_checks_the_store_url(tmp_path: Path, url: str, problem: str) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", store_url=url)
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "configuration problems (1):"
    assert lines[1].startswith(f"  {config}: store.url: {problem}")
    assert "write sqlite:////var/lib/pmsync/pmsync.db or postgresql+psycopg://" in lines[1]
