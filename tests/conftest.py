"""Shared fixtures: stores on SQLite and PostgreSQL, the fake clock, the Zendesk and Jira
simulators, config files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pmsync.connectors.jira import JiraConnector
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment, JiraSimulator
from pmsync.simulators.jira import generate as generate_jira
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from tests.daemon_helpers import DaemonProcess
from tests.jira_support import DEPLOYMENTS, make_connector, start_sim

REPO = Path(__file__).resolve().parent.parent
# Where every test's fake clock starts: 15 January 2026, 18:00 UTC. America/Los_Angeles is UTC-8
# then (no daylight saving time), so the Jira tests can say which local minute a moment is in.
START = datetime(2026, 1, 15, 18, 0, tzinfo=UTC).timestamp()
PG_URL = os.environ.get("PMSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("PMSYNC_REQUIRE_POSTGRES") == "1"

# Tables fold to $COLUMNS when piped (app/cli/tables.py). pytest-xdist's workers export the
# terminal's size; tests start as a pipe does, with none, and set it where they mean to.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


_PG_REASON = _postgres_available()


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    if _PG_REASON is not None:
        if REQUIRE_PG:
            pytest.fail(f"PMSYNC_REQUIRE_POSTGRES=1 but {_PG_REASON}")
        pytest.skip(_PG_REASON)
    return PG_URL


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A URL of the database at `base_url` whose search_path is a fresh schema, dropped
    afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base_url}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    with pg_schema(pg_base_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> FakeClock:
    """The test's clock, at START until the test moves it; hand it to simulators, connectors and
    whatever else takes a `clock`, so they agree about the time."""
    return FakeClock(START)


@pytest.fixture
def zendesk_sim() -> Iterator[ZendeskSimulator]:
    sim = ZendeskSimulator(incremental_per_minute=None, plan_per_minute=None)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def small_zendesk(zendesk_sim: ZendeskSimulator) -> ZendeskSimulator:
    generate(
        zendesk_sim,
        organizations=20,
        users=80,
        tickets=300,
        seed=11,
        jira_keys=[("10001", "PROJ-1"), ("10002", "PROJ-2")],
    )
    return zendesk_sim


@pytest.fixture(params=DEPLOYMENTS)
def jira_deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each Jira test runs against Cloud and Data Center."""
    deployment: Deployment = request.param
    return deployment


@pytest.fixture
def jira_sim(jira_deployment: Deployment, clock: FakeClock) -> Iterator[JiraSimulator]:
    """A Jira simulator of each deployment on the test's clock, holding 60 generated issues."""
    sim = start_sim(jira_deployment, clock)
    generate_jira(sim, issues=60, seed=1)
    yield sim
    sim.stop()


@pytest.fixture
def jira_connector(jira_sim: JiraSimulator, clock: FakeClock) -> Iterator[JiraConnector]:
    """The Jira connector for `jira_sim`, on the same clock."""
    connector = make_connector(jira_sim, clock)
    yield connector
    connector.close()


def write_config(
    directory: Path,
    *,
    zendesk_url: str | None = None,
    store_url: str | None = None,
    token_env: str = "PMSYNC_TEST_ZENDESK_TOKEN",
    page_size: int = 1000,
    extra: str = "",
    mappings: list[str] | None = None,
    incremental_per_minute: int = 100_000,
    zendesk_settings: str = "",
) -> Path:
    """A pmsync.toml for tests; the token is read from `token_env`; `zendesk_settings` are
    lines of the `[connectors.zendesk]` table."""
    paths = mappings if mappings is not None else [str(REPO / "mappings")]
    lines = [
        "[store]",
        f'url = "{store_url or "sqlite:///" + str(directory / "pmsync.db")}"',
        "[mappings]",
        "paths = [" + ", ".join(f'"{p}"' for p in paths) + "]",
        "[sync]",
        'initial_backoff = "0.05s"',
        'max_backoff = "2s"',
    ]
    if zendesk_url:
        lines += [
            "[connectors.zendesk]",
            'type = "zendesk"',
            f'base_url = "{zendesk_url}"',
            f"page_size = {page_size}",
            f"incremental_requests_per_minute = {incremental_per_minute}",
            "requests_per_minute = 100000",
            *zendesk_settings.splitlines(),
            "[connectors.zendesk.credentials]",
            'email = "ops@example.com"',
            f'api_token = {{ env = "{token_env}" }}',
        ]
    path = directory / "pmsync.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def zendesk_token(monkeypatch: pytest.MonkeyPatch, zendesk_sim: ZendeskSimulator) -> str:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", zendesk_sim.token)
    return zendesk_sim.token


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    """Name the PostgreSQL requirement in the report when it is missing."""
    if _PG_REASON is None or REQUIRE_PG:
        return
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=_PG_REASON))


_GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(autouse=True)
def signal_handlers_kept() -> Iterator[None]:
    """A test that leaves a signal handler of its own behind fails by name (and the handler
    is put back): a later test in the same worker would otherwise meet it, as Ctrl-C tests do."""
    before = {number: signal.getsignal(number) for number in _GUARDED_SIGNALS}
    yield
    changed = [
        signal.Signals(number).name
        for number, handler in before.items()
        if signal.getsignal(number) is not handler
    ]
    for number, handler in before.items():
        if handler is not None:  # None: set outside Python, cannot be put back from here
            signal.signal(number, handler)
    assert not changed, f"the test left its own handler for {', '.join(changed)}"


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Daemons, simulators and sockets a test started, stopped whatever happens in it."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, DaemonProcess):
            thing.cleanup()
        elif isinstance(thing, socket.socket):
            thing.close()
        else:
            thing.stop()
