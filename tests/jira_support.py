"""Helpers for the Jira tests: simulators and connectors on the test's clock, mappings, stores.

The fixtures built on them (`clock`, `jira_deployment`, `jira_sim`, `jira_connector`) are in
conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pmsync.connectors.jira import JiraConnector
from pmsync.connectors.jira.settings import JiraCredentials, JiraSettings
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment, JiraSimulator
from pmsync.sync.engine import SyncEngine
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.mapping.loader import load_mappings
from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent
PROJECTS = ["CORE", "MOBILE", "DATA"]
DEPLOYMENTS: tuple[Deployment, ...] = ("cloud", "datacenter")


def start_sim(deployment: Deployment, clock: FakeClock, **kwargs: Any) -> JiraSimulator:
    sim = JiraSimulator(deployment=deployment, clock=clock, **kwargs)
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
