"""Figures for the `rest` connector on real API shapes: Zendesk's exports and links.

    python benchmarks/rest_zendesk.py [--organizations 300] [--tickets 20000] [--links 6000]
                                      [--zendesk-limits]

Reads a simulated Zendesk account through `rest` alone, as a product-ops person would configure
it from the README: organizations from the time-based export (the worked example in
mappings/examples/zendesk_organizations.toml: epoch start_time, end_of_stream, deleted_at),
tickets from the cursor export (after_url, end_of_stream, status "deleted"), Jira links by
since_id. Prints, per stream, what the source holds against what was stored, and the requests
and writes of a first sync, a no-change cycle and a cycle after a few changes.
`--zendesk-limits` keeps Zendesk's 10 export requests a minute (and 700 others) in the
simulator and counts its 429 answers: the connector's pacing should leave none (slow: minutes).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.logs import configure_logging
from pmsync.simulators.zendesk import ZendeskSimulator, generate

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "mappings" / "examples" / "zendesk_organizations.toml"
TOKEN_ENV = "BENCH_ZENDESK_REST"
STREAMS = ["zendesk_orgs.organizations", "zendesk_orgs.tickets", "zendesk_orgs.links"]

MORE_ENDPOINTS = """
[connectors.zendesk_orgs.endpoints.tickets]
path = "/api/v2/incremental/tickets/cursor.json"
params = { per_page = 1000 }
records_path = "tickets"
rate_limit_group = "exports"
deleted_when = "status == 'deleted'"
[connectors.zendesk_orgs.endpoints.tickets.pagination]
style = "next_url"
next_url_path = "after_url"
last_page_path = "end_of_stream"
[connectors.zendesk_orgs.endpoints.tickets.incremental]
cursor_field = "generated_timestamp"
type = "integer"
param = "start_time"
initial_value = 0

[connectors.zendesk_orgs.endpoints.links]
path = "/api/v2/jira/links"
records_path = "links"
[connectors.zendesk_orgs.endpoints.links.pagination]
style = "cursor"
token_param = "since_id"
next_token_path = "links[-1].id"
[connectors.zendesk_orgs.endpoints.links.incremental]
cursor_field = "id"
type = "integer"
param = "since_id"
initial_value = 0
"""

MORE_MAPPINGS = """
connector = "zendesk_orgs"
[streams.tickets]
entity = "feedback"
[streams.tickets.fields]
id = "id"
subject = "subject"
status = "status"
organization_id = "organization_id"
updated_at = "updated_at"
[streams.links]
entity = "issue_link"
[streams.links.fields]
id = "id"
ticket_id = "ticket_id"
issue_id = "issue_id"
issue_key = "issue_key"
"""


def example_block(sim: ZendeskSimulator, paced: bool) -> str:
    """The example's commented connector block, uncommented, pointed at the simulator."""
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# [connectors.zendesk_orgs]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    text = "\n".join(block)
    text = text.replace("https://acme.zendesk.com", sim.base_url)
    text = text.replace("pmsync@acme.com/token", f"{sim.email}/token")
    text = text.replace('{ credential = "zendesk_api_token" }', f'{{ env = "{TOKEN_ENV}" }}')
    if not paced:
        text = text.replace("requests_per_minute = 400 ", "requests_per_minute = 1000000 ")
        text = text.replace("{ exports = 10 }", "{ exports = 1000000 }")
    return text + "\n"


def cycle(runtime: Runtime, sim: ZendeskSimulator, label: str) -> None:
    sim.reset_log()
    started = time.perf_counter()
    results = runtime.run_once(STREAMS, sweep=False)
    seconds = time.perf_counter() - started
    for result in results:
        if result.status != "ok":
            raise SystemExit(f"{result.stream}: {result.status}: {result.error}")
    refused = sum(1 for r in sim.requests if r.status == 429)
    by_stream = ", ".join(
        f"{r.stream} {r.pages} pages / {r.written} writes ({r.deleted} tombstoned)" for r in results
    )
    print(f"{label:<18} {seconds:7.2f} s  429s: {refused}  {by_stream}")


def stored(runtime: Runtime, stream: str) -> tuple[int, int]:
    live = gone = 0
    for record in runtime.store.iter_records(
        connector="zendesk_orgs", stream=stream, include_deleted=True
    ):
        if record.deleted_at is None:
            live += 1
        else:
            gone += 1
    return live, gone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--organizations", type=int, default=300)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--links", type=int, default=6_000)
    parser.add_argument("--zendesk-limits", action="store_true")
    args = parser.parse_args()
    configure_logging("warning", "json")
    paced = args.zendesk_limits
    sim = ZendeskSimulator(
        incremental_per_minute=10 if paced else None, plan_per_minute=700 if paced else None
    )
    sim.start()
    generate(sim, organizations=args.organizations, users=500, tickets=args.tickets, seed=19)
    for org_id in sorted(sim.organizations)[:5]:
        sim.delete_organization(org_id)
    ticket_ids = sorted(sim.tickets.items)
    for n in range(args.links):
        sim.add_jira_link(ticket_ids[n % len(ticket_ids)], f"{10_000 + n}", f"APP-{n}")
    os.environ[TOKEN_ENV] = sim.token
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        mappings = folder / "more.toml"
        mappings.write_text(MORE_MAPPINGS)
        config = folder / "pmsync.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{folder / "bench.db"}"\n'
            f'[mappings]\npaths = ["{EXAMPLE}", "{mappings}"]\n'
            + example_block(sim, args.zendesk_limits)
            + MORE_ENDPOINTS
        )
        runtime = Runtime.load(str(config))
        cycle(runtime, sim, "first sync")
        cycle(runtime, sim, "no-change cycle")
        changed_org = sorted(sim.organizations)[50]
        sim.put_organization({**sim.organizations[changed_org], "name": "Renamed"})
        sim.delete_ticket(ticket_ids[-1])
        sim.add_jira_link(ticket_ids[0], "99999", "NEW-1")
        cycle(runtime, sim, "3 changes")
        deleted_tickets = sum(1 for t in sim.tickets.items.values() if t["status"] == "deleted")
        deleted_orgs = sum(1 for o in sim.organizations.values() if o["deleted_at"] is not None)
        sources = {
            "organizations": (len(sim.organizations) - deleted_orgs, deleted_orgs),
            "tickets": (len(sim.tickets.items) - deleted_tickets, deleted_tickets),
            "links": (len(sim.jira_links), 0),
        }
        for stream, (live, gone) in sources.items():
            kept = stored(runtime, stream)
            print(f"{stream:<14} source live/deleted {live}/{gone}  stored live/tombstoned {kept}")
        runtime.close()
    sim.stop()


if __name__ == "__main__":
    main()
