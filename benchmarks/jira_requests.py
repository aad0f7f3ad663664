"""Requests the Jira connector spends: a full read, a no-change cycle, an id-only census.

Against the Jira simulator (Cloud and Data Center modes) holding N issues, through the real
jira library, the engine and a SQLite store with the shipped mapping (mappings/jira.toml):
  * full:      the first cycle (library serverInfo, the field catalogue, search pages);
  * no-change: a cycle five simulated minutes later, nothing having changed;
  * census:    the id-only sweep that finds deleted and hidden issues.
Targets: full <= ceil(N / page size) + a small constant; no-change = 1 request per stream.
Request counts come from the simulator's own log. Run:

    python benchmarks/jira_requests.py                       # 20,000 issues, pages of 100
    python benchmarks/jira_requests.py --issues 50000 --page-size 100
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from pmsync.connectors.jira import JiraConnector
from pmsync.connectors.jira.settings import JiraCredentials, JiraSettings
from pmsync.logs import configure_logging
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment, JiraSimulator, generate
from pmsync.sync.engine import SyncEngine
from pmsync.sync.mapping.loader import load_mappings
from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 15, 18, 0, tzinfo=UTC).timestamp()


def endpoints(sim: JiraSimulator) -> str:
    counts = Counter(r.path.split("/rest/api/2/", 1)[-1] for r in sim.requests)
    return ", ".join(f"{path} {n}" for path, n in sorted(counts.items()))


def run(deployment: Deployment, issues: int, page_size: int) -> bool:
    clock = FakeClock(START)
    sim = JiraSimulator(deployment=deployment, clock=clock)
    sim.start()
    try:
        generate(sim, issues=issues, seed=42)
        creds = (
            JiraCredentials(email=sim.email, api_token=SecretStr(sim.api_token))
            if deployment == "cloud"
            else JiraCredentials(personal_access_token=SecretStr(sim.pat))
        )
        connector = JiraConnector(
            "jira",
            JiraSettings(
                base_url=sim.base_url,
                projects=["CORE", "MOBILE", "DATA"],
                page_size=page_size,
                requests_per_second=None,
                credentials=creds,
            ),
        )
        connector.clock = clock
        mapping = load_mappings([REPO / "mappings" / "jira.toml"]).for_connector("jira", "jira")
        stream = mapping["issues"]
        stream.bind_key("id")
        spec = connector.stream("issues")
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/bench.db")
            engine = SyncEngine(store, run_id="bench", sleep=lambda _s: None)

            sim.reset_log()
            started = time.perf_counter()
            full = engine.sync_stream(connector, spec, stream)
            seconds = time.perf_counter() - started
            full_requests, full_detail = len(sim.requests), endpoints(sim)

            clock.advance(300)
            sim.reset_log()
            quiet = engine.sync_stream(connector, spec, stream)
            quiet_requests, quiet_detail = len(sim.requests), endpoints(sim)

            sim.reset_log()
            engine.sweep_stream(connector, spec, stream)
            census_requests, census_detail = len(sim.requests), endpoints(sim)
            store.close()
        connector.close()
    finally:
        sim.stop()

    effective = min(page_size, 100) if deployment == "cloud" else min(page_size, 1000)
    pages = math.ceil(issues / effective)
    ok = full.inserted == issues and full_requests <= pages + 3 and quiet_requests == 1
    print(f"\n{deployment} ({issues:,} issues, page size {page_size}):")
    print(
        f"  full read   {full_requests:>5} requests  (target <= {pages} pages + 3)  "
        f"[{full_detail}]  {full.inserted:,} stored in {seconds:.1f} s "
        f"({full.inserted / seconds:,.0f} issues/s)"
    )
    print(
        f"  no change   {quiet_requests:>5} requests  (target 1)  [{quiet_detail}]  "
        f"{quiet.written} store writes"
    )
    print(f"  census      {census_requests:>5} requests  [{census_detail}]")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    configure_logging("warning", "console")
    modes: tuple[Deployment, ...] = ("cloud", "datacenter")
    results = [run(mode, args.issues, args.page_size) for mode in modes]
    print("\nall targets met" if all(results) else "\nTARGET MISSED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
