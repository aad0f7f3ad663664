"""Helpers for the Jira tests: a shared fake clock, simulators, connectors, mappings, stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pmsync.connectors.jira import JiraConnector
from pmsync.connectors.jira.settings import JiraCredentials, JiraSettings
from pmsync.simulators.jira import JiraSimulator
from pmsync.sync.engine import SyncEngine
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.mapping.loader import load_mappings
from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent
# 15 January: America/Los_Angeles is UTC-8 then (no daylight saving time).
START = datetime(2026, 1, 15, 18, 0, tzinfo=UTC).timestamp()
PROJECTS = ["CORE", "MOBILE", "DATA"]


class FakeClock:
    """One clock for the simulator and the connector, moved by the test."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def start_sim(deployment: str, clock: FakeClock, **kwargs: Any) -> JiraSimulator:
    sim = JiraSimulator(deployment=deployment, clock=clock, **kwargs)  # type: ignore[arg-type]
    sim.start()
    return sim


def credentials(sim: JiraSimulator, secret: str | None = None) -> JiraCredentials:
    if sim.deployment == "cloud":
        return JiraCredentials(email=sim.email, api_token=SecretStr(secret or sim.api_token))
    return JiraCredentials(personal_access_token=SecretStr(secret or sim.pat))


def make_connector(
    sim: JiraSimulator,
    clock: FakeClock,
    *,
    secret: str | None = None,
    name: str = "jira",
    **settings: Any,
) -> JiraConnector:
    values: dict[str, Any] = {
        "base_url": sim.base_url,
        "projects": PROJECTS,
        "page_size": 40,
        "requests_per_second": None,
        "credentials": credentials(sim, secret),
    }
    values.update(settings)
    connector = JiraConnector(name, JiraSettings(**values))
    connector.clock = clock
    return connector


def default_mapping() -> CompiledStream:
    """The shipped mappings/jira.toml, bound to the stream key."""
    mapping = load_mappings([REPO / "mappings" / "jira.toml"]).for_connector("jira", "jira")
    stream = mapping["issues"]
    stream.bind_key("id")
    return stream


def mapping_from(tmp_path: Path, fields: str) -> CompiledStream:
    """A one-stream mapping for issues from TOML field lines."""
    path = tmp_path / "jira-test.toml"
    path.write_text(
        'connector = "jira"\n[streams.issues]\nentity = "issue"\n[streams.issues.fields]\n' + fields
    )
    stream = load_mappings([path]).for_connector("jira", "jira")["issues"]
    stream.bind_key("id")
    return stream


def engine_and_store(tmp_path: Path) -> tuple[SyncEngine, Store]:
    store = Store(f"sqlite:///{tmp_path / 'jira.db'}")
    return SyncEngine(store, run_id="test", sleep=lambda _s: None), store


def search_requests(sim: JiraSimulator) -> list[Any]:
    return [r for r in sim.requests if "/search" in r.path]
