"""Full sync into PostgreSQL against a bare psycopg floor, on simulated Zendesk tickets.

The Zendesk simulator serves N tickets (its own process). Each side then runs in a fresh
process, into its own fresh PostgreSQL database:
  * floor:  follow the cursor export with one requests.Session, json-parse each page, map each
            ticket to a row (id, updated_at, 8 extracted columns, the record as JSON text) and
            upsert the page with psycopg's executemany in one transaction;
  * pmsync: `Runtime.run_once` of the tickets stream (HTTP, mapping, hashing, the store).
Both time their whole read, HTTP included. It prints records/s of each and pmsync/floor
(target >= 0.7), plus CPU seconds of each process. Needs a PostgreSQL server on which the
user may create databases (default: the local test server). Run:

    python benchmarks/postgres_sync.py                       # 100,000 tickets
    python benchmarks/postgres_sync.py --size 20000 --dsn postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import requests

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
EMAIL = "ops@example.com"
TARGET = 0.7
PATH = "/api/v2/incremental/tickets/cursor.json"
COLUMNS = (
    "id",
    "updated_at",
    "subject",
    "status",
    "priority",
    "type",
    "requester_id",
    "assignee_id",
    "organization_id",
    "via_channel",
    "raw",
)
DDL = """CREATE TABLE tickets (
    id BIGINT PRIMARY KEY, updated_at TEXT NOT NULL,
    subject TEXT, status TEXT, priority TEXT, type TEXT,
    requester_id BIGINT, assignee_id BIGINT, organization_id BIGINT, via_channel TEXT,
    raw TEXT NOT NULL)"""
UPSERT = (
    f"INSERT INTO tickets ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def to_row(t: dict[str, Any]) -> tuple[Any, ...]:
    return (
        t["id"],
        t["updated_at"],
        t.get("subject"),
        t.get("status"),
        t.get("priority"),
        t.get("type"),
        t.get("requester_id"),
        t.get("assignee_id"),
        t.get("organization_id"),
        (t.get("via") or {}).get("channel"),
        json.dumps(t, ensure_ascii=False, separators=(",", ":")),
    )


def run_floor(url: str, dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as connection:
        connection.execute(DDL)
        connection.commit()
        started, cpu = time.perf_counter(), cpu_seconds()
        total = 0
        params: dict[str, Any] = {"start_time": 0, "per_page": 1000}
        with requests.Session() as session:
            session.auth = (f"{EMAIL}/token", TOKEN)
            while True:
                response = session.get(f"{url}{PATH}", params=params, timeout=60)
                response.raise_for_status()
                page = json.loads(response.content)
                rows = [to_row(t) for t in page["tickets"]]
                with connection.cursor() as cursor:
                    cursor.executemany(UPSERT, rows)
                connection.commit()
                total += len(rows)
                if page["end_of_stream"]:
                    break
                params = {"cursor": page["after_cursor"], "per_page": 1000}
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        stored = connection.execute("SELECT count(*) FROM tickets").fetchone()
    assert stored is not None
    assert stored[0] == total, (stored, total)
    return {"records": total, "seconds": seconds, "cpu_s": cpu}


def run_pmsync(url: str, dsn: str, workdir: Path) -> dict[str, Any]:
    from pmsync.app.runtime import Runtime
    from pmsync.gcpolicy import bulk_allocation

    config = workdir / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "{dsn.replace("postgresql://", "postgresql+psycopg://")}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        f'[log]\nlevel = "warning"\n'
        f'[connectors.zendesk]\ntype = "zendesk"\nbase_url = "{url}"\n'
        "incremental_requests_per_minute = 1000000\nrequests_per_minute = 1000000\n"
        'streams = ["tickets"]\n'
        f'[connectors.zendesk.credentials]\nemail = "{EMAIL}"\n'
        'api_token = { env = "BENCH_ZENDESK_TOKEN" }\n'
    )
    os.environ["BENCH_ZENDESK_TOKEN"] = TOKEN
    runtime = Runtime.load(str(config))
    runtime.store  # migrate outside the timed part  # noqa: B018
    started, cpu = time.perf_counter(), cpu_seconds()
    with bulk_allocation():  # as `pmsync sync` runs it
        [result] = runtime.run_once(["zendesk.tickets"], sweep=False)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    runtime.close()
    assert result.status == "ok", result.error
    return {"records": result.inserted, "seconds": seconds, "cpu_s": cpu}


# ---- driver -----------------------------------------------------------------------------------


@contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """A new empty database on the server of `dsn`, dropped afterwards."""
    name = f"pmsync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def worker(kind: str, url: str, dsn: str, workdir: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--url",
            url,
            "--dsn",
            dsn,
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(size: int, dsn: str, workdir: Path) -> dict[str, dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--worker", "serve", "--size", str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    figures: dict[str, dict[str, Any]] = {}
    try:
        for kind in ("floor", "pmsync"):
            with fresh_database(dsn) as database:
                figures[kind] = worker(kind, url, database, workdir)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dsn", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.worker == "serve":
        serve(args.size)
        return
    if args.worker == "floor":
        print(json.dumps(run_floor(args.url, args.dsn)))
        return
    if args.worker == "pmsync":
        print(json.dumps(run_pmsync(args.url, args.dsn, args.workdir)))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args.size, args.dsn, Path(tmp))
    rate = {kind: f["records"] / f["seconds"] for kind, f in figures.items()}
    for kind, figure in figures.items():
        print(
            f"{kind:>7}: {figure['records']:,} records in {figure['seconds']:.2f} s "
            f"({rate[kind]:,.0f} records/s), CPU {figure['cpu_s']:.2f} s"
        )
    ratio = rate["pmsync"] / rate["floor"]
    print(f"RATIO pmsync/floor records/s {ratio:.2f} (target >= {TARGET})")
    sys.exit(0 if ratio >= TARGET else 1)


if __name__ == "__main__":
    main()
