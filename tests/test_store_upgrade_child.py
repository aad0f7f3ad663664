"""Commands that keep running create or upgrade the store in a child process: Alembic never
enters their memory, and the child's failures are the ConfigErrors the in-process path raises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmsync.errors import ConfigError
from pmsync.sync.store import upgrade
from pmsync.sync.store.presence import head_revision
from pmsync.sync.store.store import Store, create_store_engine
from tests.store_support import downgrade_one_step

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys, json
from pmsync.app.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="pmsync")
except SystemExit:
    pass
print("MODULES " + json.dumps(sorted(sys.modules)))
"""


def _in_process_error(url: str) -> ConfigError:
    engine = create_store_engine(url, prepare_file=False)
    try:
        with pytest.raises(ConfigError) as caught:
            upgrade.upgrade(engine)
    finally:
        engine.dispose()
    return caught.value


def _child_error(url: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        upgrade.upgrade_in_child(url)
    return caught.value


def test_a_sync_on_a_new_store_migrates_it_without_importing_alembic(tmp_path: Path) -> None:
    database = tmp_path / "pmsync.db"
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{database}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        '[connectors.zendesk]\ntype = "zendesk"\nbase_url = "http://127.0.0.1:9"\n'
        'streams = ["tickets"]\n'
        '[connectors.zendesk.credentials]\nemail = "ops@example.com"\n'
        'api_token = { env = "UPGRADE_CHILD_TOKEN" }\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "-c", str(config), "sync", "--once", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "UPGRADE_CHILD_TOKEN": "x"},
        check=False,
    )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("MODULES ")][-1]
    modules = set(json.loads(line.removeprefix("MODULES ")))
    assert "pmsync.sync.store.upgrade" in modules  # the store was new: it was upgraded...
    assert not {m for m in modules if m == "alembic" or m.startswith("alembic.")}  # ...apart
    assert "mako" not in modules
    assert Store(f"sqlite:///{database}", migrate=False).schema_revision() == head_revision()
    assert oct(database.stat().st_mode & 0o777) == "0o600"


def test_the_child_migrates_both_backends_and_a_second_open_does_nothing(store_url: str) -> None:
    store = Store(store_url, upgrade_in_child=True)
    assert store.schema_revision() == head_revision()
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"records", "stream_state", "dead_letters", "alembic_version"} <= tables
    store.close()
    Store(store_url, upgrade_in_child=True).close()


def test_a_database_that_cannot_be_opened_is_the_same_config_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}"  # a directory, not a database file
    child = _child_error(url)
    assert [str(p) for p in child.problems] == [str(p) for p in _in_process_error(url).problems]
    assert "cannot open the store" in str(child)


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_the_same_config_error(pg_base_url: str) -> None:
    url = sa.make_url(pg_base_url).set(database="pmsync_no_such_database")
    text = url.render_as_string(hide_password=False)
    child = _child_error(text)
    assert [str(p) for p in child.problems] == [str(p) for p in _in_process_error(text).problems]
    assert "pmsync_no_such_database" in str(child)


def test_a_failed_backup_in_the_child_stops_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pmsync.db'}"
    store = Store(url)
    downgrade_one_step(store)
    revision = store.schema_revision()
    store.close()
    now = datetime.now(UTC)
    for offset in range(-2, 30):  # occupy the copy's name for the next seconds
        stamp = (now + timedelta(seconds=offset)).strftime("%Y%m%dT%H%M%SZ")
        (tmp_path / f"pmsync.db.before-{head_revision()}-{stamp}").mkdir()
    with pytest.raises(ConfigError, match="backup failed") as caught:
        Store(url, upgrade_in_child=True)
    assert caught.value.problems[0].path == "store.url"
    assert Store(url, migrate=False).schema_revision() == revision  # nothing was migrated


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_read_only_directory_is_the_same_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder / 'pmsync.db'}"
    folder.chmod(0o500)
    try:
        child = _child_error(url)
        assert [str(p) for p in child.problems] == [str(p) for p in _in_process_error(url).problems]
    finally:
        folder.chmod(0o700)
