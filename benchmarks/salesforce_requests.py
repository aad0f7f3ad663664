"""Salesforce API calls per sync, counted by the simulator, against the floor the API allows.

Runs the real wiring (configuration, Runtime, engine, SQLite store, simple-salesforce over HTTP)
against the Salesforce simulator holding N accounts and M contacts, and prints:
  * the calls of a full sync of Account through REST, next to ceil(N / batch size);
  * the calls of the same full sync through Bulk API 2.0 (bulk_threshold below N);
  * the calls of a no-change cycle, per stream, and the records it wrote;
  * the daily-allocation share a no-change cycle every 5 minutes would use.
API calls are the ones that count against the org's allocation (logins do not). Run:

    python benchmarks/salesforce_requests.py                      # 50,000 accounts
    python benchmarks/salesforce_requests.py --accounts 100000 --contacts 20000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmsync.app.runtime import Runtime  # noqa: E402
from pmsync.logs import configure_logging  # noqa: E402
from pmsync.simulators.salesforce import SalesforceSimulator, generate  # noqa: E402

KEY_VARIABLE = "BENCH_SALESFORCE_SECRET"


def write_config(workdir: Path, sim: SalesforceSimulator, batch: int, bulk: int | None) -> Path:
    config = workdir / "pmsync.toml"
    bulk_line = f"bulk_threshold = {bulk}" if bulk is not None else ""
    config.write_text(
        f'[store]\nurl = "sqlite:///{workdir / "bench.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings" / "salesforce.toml"}"]\n'
        '[log]\nlevel = "warning"\n'
        "[connectors.salesforce]\n"
        'type = "salesforce"\n'
        f'base_url = "{sim.base_url}"\n'
        'my_domain = "bench.my.salesforce.com"\n'
        f"batch_size = {batch}\n"
        'bulk_poll_interval = "0.05s"\n'
        f"{bulk_line}\n"
        "[connectors.salesforce.credentials]\n"
        f'client_id = "{sim.client_id}"\n'
        f'client_secret = {{ env = "{KEY_VARIABLE}" }}\n'
    )
    os.environ[KEY_VARIABLE] = sim.client_secret
    return config


def api_calls(sim: SalesforceSimulator, since: int) -> Counter[str]:
    """Calls under /services/data/vXX.X since log index `since`, by kind."""
    kinds: Counter[str] = Counter()
    for request in sim.requests[since:]:
        path = request.path
        if not path.startswith("/services/data/v"):
            continue
        resource = path.split("/", 5)[4] if path.count("/") >= 4 else path
        kinds[resource] += 1
    return kinds


def full_sync(
    sim: SalesforceSimulator, batch: int, bulk: int | None, streams: list[str]
) -> tuple[Runtime, Counter[str], float, list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix="pmsync-sf-bench-"))
    runtime = Runtime.load(str(write_config(workdir, sim, batch, bulk)))
    runtime.store  # migrate before counting  # noqa: B018
    mark = len(sim.requests)
    started = time.perf_counter()
    results = runtime.run_once(streams, sweep=False)
    seconds = time.perf_counter() - started
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"sync failed: {failed[0].error}")
    summary = [f"{r.stream}: {r.inserted:,} stored" for r in results]
    return runtime, api_calls(sim, mark), seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    batch = args.batch_size
    configure_logging("warning", "console")

    sim = SalesforceSimulator(api_allocation=10_000_000, bulk_polls=2)
    sim.start()
    generate(sim, accounts=args.accounts, contacts=args.contacts, seed=1)
    floor = math.ceil(args.accounts / batch)
    print(f"Salesforce simulator: {args.accounts:,} accounts, {args.contacts:,} contacts")
    print(f"batch size {batch}; floor for Account = ceil({args.accounts:,} / {batch}) = {floor}")

    runtime, calls, seconds, summary = full_sync(sim, batch, None, ["salesforce.Account"])
    total = sum(calls.values())
    print(
        f"\nfull sync, REST:  {total} API calls = floor {floor} + {total - floor} "
        f"({dict(calls)}); {seconds:.1f} s; {', '.join(summary)}"
    )
    runtime.run_once(["salesforce.Contact"], sweep=False)

    for cycle in (1, 2):
        mark = len(sim.requests)
        results = runtime.run_once(sweep=False)
        per_stream: list[str] = []
        for result in results:
            per_stream.append(f"{result.stream} {result.pages} page(s), writes {result.written}")
        calls = api_calls(sim, mark)
        streams = len(results)
        print(
            f"no-change cycle {cycle}: {sum(calls.values())} API calls for {streams} streams "
            f"({dict(calls)}); {'; '.join(per_stream)}"
        )
    per_day = sum(calls.values()) * 24 * 12
    print(
        f"a no-change cycle every 5 minutes: {per_day:,} calls a day "
        f"= {per_day / 100_000:.2%} of a 100,000-call allocation"
    )
    runtime.close()

    bulk_runtime, calls, seconds, summary = full_sync(
        sim, batch, args.accounts - 1, ["salesforce.Account"]
    )
    total = sum(calls.values())
    print(
        f"\nfull sync, Bulk API 2.0 (threshold {args.accounts - 1:,}): {total} API calls "
        f"({dict(calls)}); {seconds:.1f} s; {', '.join(summary)}"
    )
    bulk_runtime.close()
    sim.stop()


if __name__ == "__main__":
    main()
