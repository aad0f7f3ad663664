"""Sync throughput and memory against the bare floor, on simulated Zendesk tickets.

For each size it starts the Zendesk simulator in its own process, then runs in fresh processes:
  * pmsync: a full sync of the tickets stream (zenpy session, HTTP, mapping, hashing, store);
  * floor:  the same pages fetched with plain requests, then parsed with json.loads and
            inserted into SQLite with executemany in one transaction (only parse + insert timed);
  * floor+http: the same, with the HTTP fetches inside the timed part.
It prints records/second and peak resident memory of each. Run:

    python benchmarks/zendesk_throughput.py                 # 10,000 and 100,000 tickets
    python benchmarks/zendesk_throughput.py --sizes 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
EMAIL = "ops@example.com"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- workers (each runs in a fresh process) ---------------------------------------------------


def serve(size: int) -> None:
    from pmsync.simulators.zendesk import ZendeskSimulator, generate

    sim = ZendeskSimulator(
        email=EMAIL, token=TOKEN, incremental_per_minute=None, plan_per_minute=None
    )
    sim.start()
    generate(sim, organizations=100, users=500, tickets=size, deleted_ticket_share=0.0, seed=1)
    print(sim.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin


def run_pmsync(url: str, workdir: Path) -> dict[str, Any]:
    from pmsync.app.runtime import Runtime

    config = workdir / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{workdir / "bench.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        f'[log]\nlevel = "warning"\n'
        f'[connectors.zendesk]\ntype = "zendesk"\nbase_url = "{url}"\n'
        "incremental_requests_per_minute = 1000000\nrequests_per_minute = 1000000\n"
        f'[connectors.zendesk.credentials]\nemail = "{EMAIL}"\n'
        'api_token = { env = "BENCH_ZENDESK_TOKEN" }\n'
    )
    os.environ["BENCH_ZENDESK_TOKEN"] = TOKEN
    runtime = Runtime.load(str(config))
    runtime.store  # migrate outside the timed part  # noqa: B018
    started = time.perf_counter()
    [result] = runtime.run_once(["zendesk.tickets"], sweep=False)
    seconds = time.perf_counter() - started
    runtime.close()
    assert result.status == "ok", result.error
    return {"records": result.inserted, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def fetch_pages(url: str) -> list[bytes]:
    session = requests.Session()
    session.auth = (f"{EMAIL}/token", TOKEN)
    pages: list[bytes] = []
    params: dict[str, Any] = {"start_time": 0, "per_page": 1000}
    while True:
        response = session.get(f"{url}/api/v2/incremental/tickets/cursor.json", params=params)
        response.raise_for_status()
        pages.append(response.content)
        body = json.loads(response.content)
        if body["end_of_stream"]:
            return pages
        params = {"cursor": body["after_cursor"], "per_page": 1000}


def insert_floor(pages: list[bytes], database: Path) -> int:
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE records (key TEXT PRIMARY KEY, raw TEXT)")
    total = 0
    with connection:
        for page in pages:
            tickets = json.loads(page)["tickets"]
            connection.executemany(
                "INSERT INTO records VALUES (?, ?)",
                [(str(t["id"]), json.dumps(t)) for t in tickets],
            )
            total += len(tickets)
    connection.close()
    return total


def run_floor(url: str, workdir: Path, with_http: bool) -> dict[str, Any]:
    if not with_http:
        pages = fetch_pages(url)
        started = time.perf_counter()
    else:
        started = time.perf_counter()
        pages = fetch_pages(url)
    records = insert_floor(pages, workdir / f"floor-{with_http}.db")
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


# ---- driver -----------------------------------------------------------------------------------


def worker(kind: str, url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--url", url, "--workdir", tmp],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(size: int) -> dict[str, dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--worker", "serve", "--size", str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    try:
        return {kind: worker(kind, url) for kind in ("pmsync", "floor", "floor+http")}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--size", type=int)
    args = parser.parse_args()
    if args.worker == "serve":
        serve(args.size)
        return
    if args.worker == "pmsync":
        print(json.dumps(run_pmsync(args.url, args.workdir)))
        return
    if args.worker in ("floor", "floor+http"):
        print(json.dumps(run_floor(args.url, args.workdir, args.worker == "floor+http")))
        return
    print(f"{'tickets':>8} {'run':>11} {'records/s':>10} {'peak RSS MB':>12} {'vs floor':>9}")
    for size in args.sizes:
        figures = measure(size)
        floor_rate = figures["floor"]["records"] / figures["floor"]["seconds"]
        for kind, figure in figures.items():
            rate = figure["records"] / figure["seconds"]
            print(
                f"{size:>8} {kind:>11} {rate:>10,.0f} {figure['peak_rss_mb']:>12.1f} "
                f"{rate / floor_rate:>9.2f}"
            )


if __name__ == "__main__":
    main()
