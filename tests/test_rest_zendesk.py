"""The `rest` connector on real API shapes: Zendesk's exports and links, through the engine.

Each test reads the Zendesk simulator (over HTTP, as the documented API answers) with a `rest`
configuration a product-ops person would write from the README: a cursor export that names a
next page on its last page too, a `since_id` that is also the page token, records marked
deleted, a list read in full each cycle, and per-endpoint request limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmsync.app.runtime import Runtime
from pmsync.connectors.base import Page
from pmsync.connectors.budget import waiting_with
from pmsync.connectors.http import ConnectorAdapter
from pmsync.connectors.rest import RestConnector
from pmsync.connectors.rest.settings import RestSettings
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.sync.engine import StreamResult
from pmsync.sync.links.world import World
from pmsync.sync.store.schema import stream_state

TOKEN_ENV = "PMSYNC_TEST_ZD_REST_TOKEN"

CONNECTOR = """
[sync]
initial_backoff = "0.01s"
max_backoff = "0.05s"
max_attempts_without_progress = 2

[connectors.zd]
type = "rest"
base_url = "{base_url}"
requests_per_minute = 100000

[connectors.zd.auth]
type = "basic"
username = "{email}/token"
password = {{ env = "{token_env}" }}
"""

# Stream -> (its endpoint, its mapping). Each test configures only the endpoints it reads, so
# on code without a feature a test fails on that feature, not on another endpoint's settings.
ENDPOINTS = {
    "tickets": (
        """
[connectors.zd.endpoints.tickets]
path = "/api/v2/incremental/tickets/cursor.json"
params = { per_page = 40 }
records_path = "tickets"
{extra}

[connectors.zd.endpoints.tickets.pagination]
style = "next_url"
next_url_path = "after_url"
last_page_path = "end_of_stream"

[connectors.zd.endpoints.tickets.incremental]
cursor_field = "generated_timestamp"
type = "integer"
param = "start_time"
initial_value = 0
""",
        """
[streams.tickets]
entity = "feedback"
[streams.tickets.fields]
id = "id"
subject = "subject"
status = "status"
updated_at = "updated_at"
""",
    ),
    "links": (
        """
[connectors.zd.endpoints.links]
path = "/api/v2/jira/links"
records_path = "links"

[connectors.zd.endpoints.links.pagination]
style = "cursor"
token_param = "since_id"
next_token_path = "links[-1].id"

[connectors.zd.endpoints.links.incremental]
cursor_field = "id"
type = "integer"
param = "since_id"
initial_value = 0
""",
        """
[streams.links]
entity = "issue_link"
[streams.links.fields]
id = "id"
ticket_id = "ticket_id"
issue_id = "issue_id"
issue_key = "issue_key"
""",
    ),
    "orgs_list": (
        """
[connectors.zd.endpoints.orgs_list]
path = "/api/v2/organizations.json"
params = { "page[size]" = 5 }
records_path = "organizations"

[connectors.zd.endpoints.orgs_list.pagination]
style = "cursor"
token_param = "page[after]"
next_token_path = "meta.after_cursor"
has_more_path = "meta.has_more"
""",
        """
[streams.orgs_list]
entity = "organization"
[streams.orgs_list.fields]
id = "id"
name = "name"
""",
    ),
}


@pytest.fixture
def sim(zendesk_sim: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch) -> ZendeskSimulator:
    generate(zendesk_sim, organizations=12, users=30, tickets=150, seed=5)
    monkeypatch.setenv(TOKEN_ENV, zendesk_sim.token)
    return zendesk_sim


@pytest.fixture
def runtime_for(tmp_path: Path, sim: ZendeskSimulator) -> Iterator[Callable[..., Runtime]]:
    """Runtime over a `rest` connector with only the named endpoints (one `extra` line each)."""
    opened: list[Runtime] = []

    def make(stream: str, extra: str = "") -> Runtime:
        endpoint, mapping = ENDPOINTS[stream]
        mapping_file = tmp_path / "zd.toml"
        mapping_file.write_text(f'connector = "zd"\n{mapping}')
        connector = CONNECTOR.format(base_url=sim.base_url, email=sim.email, token_env=TOKEN_ENV)
        config = tmp_path / "pmsync.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
            f'[mappings]\npaths = ["{mapping_file}"]\n{connector}'
            + endpoint.replace("{extra}", extra)
        )
        opened.append(Runtime.load(str(config)))
        return opened[-1]

    yield make
    for runtime in opened:
        runtime.close()


def run(runtime: Runtime, stream: str) -> StreamResult:
    (result,) = runtime.run_once([f"zd.{stream}"])
    return result


def stored(runtime: Runtime, stream: str) -> tuple[set[str], set[str]]:
    """(live keys, tombstoned keys) of a stream."""
    live: set[str] = set()
    gone: set[str] = set()
    for record in runtime.store.iter_records(connector="zd", stream=stream, include_deleted=True):
        (gone if record.deleted_at is not None else live).add(record.key)
    return live, gone


def sent(sim: ZendeskSimulator, path: str, param: str) -> list[str | None]:
    return [r.query.get(param) for r in sim.requests_to(path)]


TICKETS = "/api/v2/incremental/tickets/cursor.json"
LINKS = "/api/v2/jira/links"
ORGS = "/api/v2/organizations.json"


# ---- 1. a next-page URL that is always there, and a flag that says stop ------------------------


def test_a_cursor_export_ends_on_end_of_stream_though_it_names_a_next_page(
    runtime_for: Callable[..., Runtime], sim: ZendeskSimulator
) -> None:
    runtime = runtime_for("tickets")
    first = run(runtime, "tickets")
    assert first.status == "ok", first.error
    assert first.pages == 4  # 150 tickets, 40 a page; the last page still carries after_url
    assert len(sim.requests_to(TICKETS)) == 4
    live, _gone = stored(runtime, "tickets")
    assert live == {str(i) for i in sim.tickets.items}
    with runtime.store.engine.connect() as c:
        state = c.execute(sa.select(stream_state).where(stream_state.c.stream == "tickets")).one()
    assert state.status == "ok"
    assert state.last_success_at is not None

    sim.reset_log()
    again = run(runtime, "tickets")
    assert again.status == "ok", again.error
    assert len(sim.requests_to(TICKETS)) == 1  # a no-change cycle: one request
    assert again.written == 0


# ---- 3. a start parameter that is also the page token --------------------------------------------


def test_since_id_carries_the_cursor_on_the_first_page_and_the_token_after(
    runtime_for: Callable[..., Runtime], sim: ZendeskSimulator
) -> None:
    runtime = runtime_for("links")
    sim.links_page_size = 25
    for n in range(60):
        sim.add_jira_link(sorted(sim.tickets.items)[n], f"{10_000 + n}", f"APP-{n}")
    first = run(runtime, "links")
    assert first.status == "ok", first.error
    assert sent(sim, LINKS, "since_id") == ["0", "25", "50", "60"]
    assert len(stored(runtime, "links")[0]) == 60

    sim.reset_log()
    for n in range(3):
        sim.add_jira_link(sorted(sim.tickets.items)[n], f"{20_000 + n}", f"WEB-{n}")
    later = run(runtime, "links")
    assert later.status == "ok", later.error
    assert sent(sim, LINKS, "since_id") == ["60", "63"]
    assert later.inserted == 3


# ---- 4. records the API marks deleted ------------------------------------------------------------


def test_records_matching_deleted_when_are_tombstones(
    runtime_for: Callable[..., Runtime], sim: ZendeskSimulator
) -> None:
    runtime = runtime_for("tickets", extra="deleted_when = \"status == 'deleted'\"")
    deleted = {str(i) for i, t in sim.tickets.items.items() if t["status"] == "deleted"}
    assert deleted, "the generated account has deleted tickets"
    result = run(runtime, "tickets")
    assert result.status == "ok", result.error
    live, gone = stored(runtime, "tickets")
    assert gone == deleted
    assert live == {str(i) for i in sim.tickets.items} - deleted
    counted = {entity.key for entity in World.load(runtime.store).tickets.values()}
    assert counted == live  # links and rollups see live tickets only

    victim = min(int(k) for k in live)
    sim.delete_ticket(victim)
    later = run(runtime, "tickets")
    assert later.status == "ok", later.error
    assert later.deleted == 1
    assert str(victim) in stored(runtime, "tickets")[1]


# ---- 7. a list read in full each cycle is its own census -----------------------------------------


def test_a_complete_full_read_tombstones_what_it_did_not_return(
    runtime_for: Callable[..., Runtime], sim: ZendeskSimulator
) -> None:
    runtime = runtime_for("orgs_list")
    assert runtime.connector("zd").stream("orgs_list").sweep == "none"  # no second read
    assert run(runtime, "orgs_list").status == "ok"
    first, second = sorted(sim.organizations)[:2]
    sim.delete_organization(first)  # soft: the list leaves it out
    sim.purge_organization(second)
    sim.reset_log()
    result = run(runtime, "orgs_list")
    assert result.status == "ok", result.error
    assert len(sim.requests_to(ORGS)) == 3  # one read of 3 pages, and no census re-read
    live, gone = stored(runtime, "orgs_list")
    assert gone == {str(first), str(second)}
    assert result.deleted == 2
    assert live == {str(i) for i, o in sim.organizations.items() if o["deleted_at"] is None}


def test_a_failed_or_stopped_full_read_tombstones_nothing_until_a_listing_completes(
    runtime_for: Callable[..., Runtime], sim: ZendeskSimulator
) -> None:
    runtime = runtime_for("orgs_list")
    job = runtime.jobs(["zd.orgs_list"])[0]
    connector = runtime.connector("zd")
    assert run(runtime, "orgs_list").status == "ok"
    gone = min(sim.organizations)
    sim.purge_organization(gone)  # on the first page

    def fail_after_first_page(result: StreamResult) -> None:
        if result.pages == 1:
            sim.inject(500, path_prefix=ORGS, times=None)

    failing = runtime.engine(on_page=fail_after_first_page)
    failed = failing.sync_stream(connector, job.spec, job.mapping)
    assert failed.status == "failed"
    assert str(gone) in stored(runtime, "orgs_list")[0], "a failed read tombstoned"

    sim.clear_faults()
    stopping = runtime.engine(should_stop=lambda: True)
    stopped = stopping.sync_stream(connector, job.spec, job.mapping)
    assert stopped.status == "interrupted"
    assert stopped.pages == 1
    assert str(gone) in stored(runtime, "orgs_list")[0], "a stopped read tombstoned"

    sim.reset_log()
    resumed = runtime.engine().sync_stream(connector, job.spec, job.mapping)
    assert resumed.status == "ok", resumed.error
    assert len(sim.requests_to(ORGS)) == 1  # resumed at the last page, not from the start
    # A resumed read is no census (it did not list the first page): it proves nothing absent.
    assert str(gone) in stored(runtime, "orgs_list")[0], "a resumed read tombstoned"

    complete = runtime.engine().sync_stream(connector, job.spec, job.mapping)
    assert complete.status == "ok", complete.error
    live, tombstoned = stored(runtime, "orgs_list")
    assert tombstoned == {str(gone)}  # the next listing from the start is the census
    assert live == {str(i) for i in sim.organizations}


# ---- 6. an endpoint's own limit inside the connector's total -------------------------------------


class Waited(Exception):
    """Raised by the test's budget sleep: a request had to wait for its budget."""


def refuse_to_wait(seconds: float) -> None:
    raise Waited(seconds)


def limited_connector(sim: ZendeskSimulator) -> RestConnector:
    export = {
        "path": "/api/v2/incremental/organizations.json",
        "params": {"per_page": 2},
        "records_path": "organizations",
        "rate_limit_group": "exports",
        "pagination": {
            "style": "next_url",
            "next_url_path": "next_page",
            "last_page_path": "end_of_stream",
        },
        "incremental": {
            "cursor_field": "updated_at",
            "format": "epoch",
            "param": "start_time",
            "initial_value": 0,
        },
    }
    settings = RestSettings.model_validate(
        {
            "base_url": sim.base_url,
            "auth": {"type": "basic", "username": f"{sim.email}/token", "password": sim.token},
            "requests_per_minute": 7,
            "rate_limit_groups": {"exports": 3},
            "endpoints": {
                "orgs": export,
                "orgs_again": export,
                "links": {
                    "path": "/api/v2/jira/links",
                    "records_path": "links",
                    "requests_per_minute": 2,
                    "pagination": {
                        "style": "cursor",
                        "token_param": "since_id",
                        "next_token_path": "links[-1].id",
                    },
                },
                "list": {
                    "path": "/api/v2/organizations.json",
                    "params": {"page[size]": 1},
                    "records_path": "organizations",
                    "pagination": {
                        "style": "cursor",
                        "token_param": "page[after]",
                        "next_token_path": "meta.after_cursor",
                        "has_more_path": "meta.has_more",
                    },
                },
            },
        }
    )
    return RestConnector("zd", settings)


def read_until_held(connector: RestConnector, stream: str) -> int:
    """Pages read before a request had to wait for the budget (the test never waits)."""
    pages: list[Page] = []
    with waiting_with(refuse_to_wait), pytest.raises(Waited):
        pages.extend(connector.read(connector.stream(stream), None))
    return len(pages)


def test_endpoint_limits_count_within_the_connector_total(sim: ZendeskSimulator) -> None:
    sim.links_page_size = 1
    for n in range(4):
        sim.add_jira_link(sorted(sim.tickets.items)[n], f"{10_000 + n}", f"APP-{n}")
    connector = limited_connector(sim)
    try:
        # The group's 3 requests a minute are shared by both export endpoints.
        assert read_until_held(connector, "orgs") == 3
        assert read_until_held(connector, "orgs_again") == 0
        # An endpoint's own limit: 2 a minute.
        assert read_until_held(connector, "links") == 2
        # The rest of the connector's total (7 - 3 - 2) for an endpoint without a limit.
        assert read_until_held(connector, "list") == 2
        assert len(sim.requests) == 7
        assert all(r.status == 200 for r in sim.requests)
        adapter = connector.session().get_adapter(sim.base_url)
        assert isinstance(adapter, ConnectorAdapter)
        assert adapter.budget is not None
        usage = {u.rule: (u.used, u.limit) for u in adapter.budget.usage()}
        assert usage["rest"] == (7, 7)
        assert usage["group:exports"] == (3, 3)
        assert usage["endpoint:links"] == (2, 2)
    finally:
        connector.close()


def test_an_endpoint_limit_above_the_total_is_refused(sim: ZendeskSimulator) -> None:
    with pytest.raises(ValueError, match=r"rate_limit_groups.exports = 30 is more than"):
        RestSettings.model_validate(
            {
                "base_url": sim.base_url,
                "requests_per_minute": 20,
                "rate_limit_groups": {"exports": 30},
                "endpoints": {
                    "orgs": {"path": "/x", "records_path": "r", "rate_limit_group": "exports"}
                },
            }
        )
