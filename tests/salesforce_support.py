"""Helpers the Salesforce tests share: a connector wired to a running simulator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from pmsync.connectors.base import Page, StreamSpec
from pmsync.connectors.salesforce import SalesforceConnector
from pmsync.connectors.salesforce.cursor import SObjectCursor
from pmsync.connectors.salesforce.settings import SalesforceCredentials, SalesforceSettings
from pmsync.simulators.salesforce import SalesforceSimulator

REPO = Path(__file__).resolve().parent.parent
MY_DOMAIN = "acme.my.salesforce.com"


def make_settings(sim: SalesforceSimulator, **overrides: Any) -> SalesforceSettings:
    credentials = overrides.pop(
        "credentials",
        SalesforceCredentials(
            client_id=sim.client_id,
            client_secret=SecretStr(overrides.pop("secret", sim.client_secret)),
        ),
    )
    values: dict[str, Any] = {
        "base_url": sim.base_url,
        "my_domain": MY_DOMAIN,
        "batch_size": 200,
        "bulk_threshold": None,
        "bulk_poll_interval": 0,
        "quota_recheck_interval": 0,
        "credentials": credentials,
    }
    values.update(overrides)
    return SalesforceSettings(**values)


def make_connector(
    sim: SalesforceSimulator, name: str = "salesforce", **overrides: Any
) -> SalesforceConnector:
    connector = SalesforceConnector(name, make_settings(sim, **overrides))
    connector.sleep = lambda _seconds: None
    return connector


def read_pages(
    connector: SalesforceConnector,
    spec: StreamSpec,
    cursor: BaseModel | None = None,
    fields: Sequence[str] = (),
) -> list[Page]:
    return list(connector.read(spec, cursor, fields=frozenset(fields)))


def cursor_of(page: Page) -> SObjectCursor:
    """A Salesforce page's cursor, typed (`Page.cursor` is any connector's cursor model)."""
    assert isinstance(page.cursor, SObjectCursor)
    return page.cursor


def ids(pages: Sequence[Page]) -> list[str]:
    return [str(r["Id"]) for page in pages for r in page.records]


def running(sim: SalesforceSimulator) -> Iterator[SalesforceSimulator]:
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def write_config(
    directory: Path,
    sim: SalesforceSimulator,
    *,
    secret_env: str = "PMSYNC_TEST_SF_SECRET",
    extra: str = "",
    mappings: Sequence[str] = (),
    store_url: str | None = None,
) -> Path:
    """A pmsync.toml with one salesforce connector pointed at `sim`."""
    paths = list(mappings) or [str(REPO / "mappings" / "salesforce.toml")]
    lines = [
        "[store]",
        f'url = "{store_url or "sqlite:///" + str(directory / "pmsync.db")}"',
        "[mappings]",
        "paths = [" + ", ".join(f'"{p}"' for p in paths) + "]",
        "[sync]",
        'initial_backoff = "0.01s"',
        'max_backoff = "0.05s"',
        "[connectors.salesforce]",
        'type = "salesforce"',
        f'base_url = "{sim.base_url}"',
        f'my_domain = "{MY_DOMAIN}"',
        "batch_size = 200",
        'bulk_poll_interval = "0s"',
        extra,
        "[connectors.salesforce.credentials]",
        f'client_id = "{sim.client_id}"',
        f'client_secret = {{ env = "{secret_env}" }}',
    ]
    path = directory / "pmsync.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
