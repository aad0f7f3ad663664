"""Figures for `pmsync run`: shutdown time, takeover time, the cost of a no-change cycle.

    python -m benchmarks.daemon_service [--runs 3] [--pg postgresql+psycopg://...]

(from the repository root, as a module: it imports the daemon helpers of `tests`).

Starts real daemons against Zendesk simulators (the same helpers the acceptance tests use) and
prints:
  * SIGTERM in the middle of a sync: seconds until the process has exited;
  * kill -9 of one of three replicas on PostgreSQL: seconds until another replica reads the
    orphaned connector (lease_interval 1 s);
  * a no-change cycle: HTTP requests per stream and records rows written;
  * the daemon's resident memory after those cycles.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import orjson
import sqlalchemy as sa

from pmsync.simulators.zendesk import generate
from pmsync.sync.store.schema import records
from pmsync.sync.store.store import Store, utcnow
from tests.daemon_helpers import (
    DaemonProcess,
    daemon_env,
    start_sim,
    wait_until,
    write_daemon_config,
)

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def sigterm_seconds(work: Path) -> float:
    sim = start_sim()
    generate(sim, organizations=5, users=20, tickets=2000, seed=5)
    sim.latency = 0.05
    sims = {"zendesk": sim}
    config = write_daemon_config(
        work,
        store_url=f"sqlite:///{work / 'pmsync.db'}",
        sims=sims,
        poll="1h",
        page_size=50,
        streams=["tickets"],
    )
    daemon = DaemonProcess(config, daemon_env(sims), work / "daemon.log").start()
    try:
        wait_until(lambda: len(sim.requests_to("/api/v2/incremental/tickets")) >= 5, "pages")
        code, seconds = daemon.terminate()
        assert code == 0, code
        return seconds
    finally:
        daemon.cleanup()
        sim.stop()


def takeover_seconds(work: Path, pg_url: str) -> float:
    schema = f"b_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    sims = {f"z{n}": start_sim() for n in (1, 2, 3)}
    for seed, sim in enumerate(sims.values()):
        generate(sim, organizations=5, users=20, tickets=100, seed=seed)
    config = write_daemon_config(work, store_url=url, sims=sims, poll="0.5s")
    env = daemon_env(sims)
    daemons = [DaemonProcess(config, env, work / f"r{n}.log").start() for n in range(3)]
    try:
        wait_until(
            lambda: sorted(len(d.ready()["owned_connectors"]) for d in daemons) == [1, 1, 1],
            "balance",
            timeout=60,
        )
        victim = daemons[0]
        victim_id = victim.ready()["replica"]
        orphan = sims[victim.ready()["owned_connectors"][0]]
        victim.kill()
        killed = time.time()

        def taken() -> float | None:
            for request in orphan.requests:
                agent = request.headers.get("user-agent", "")
                if request.at > killed and victim_id not in agent and "replica/" in agent:
                    return request.at - killed
            return None

        found: float = wait_until(taken, "takeover", timeout=60)
        return found
    finally:
        for daemon in daemons:
            daemon.cleanup()
        for sim in sims.values():
            sim.stop()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def no_change_cycle(work: Path) -> dict[str, float]:
    sim = start_sim()
    generate(sim, organizations=20, users=200, tickets=2000, seed=8)
    sims = {"zendesk": sim}
    config = write_daemon_config(
        work, store_url=f"sqlite:///{work / 'pmsync.db'}", sims=sims, poll="0.5s"
    )
    daemon = DaemonProcess(config, daemon_env(sims), work / "daemon.log").start()
    store = Store(f"sqlite:///{work / 'pmsync.db'}")
    try:
        wait_until(lambda: len(daemon.events("sweep_done")) >= 3, "the first cycle", timeout=60)
        since = utcnow()
        before_runs = len(daemon.events("stream_done"))
        sim.reset_log()
        time.sleep(5)
        runs = len(daemon.events("stream_done")) - before_runs
        requests = len(sim.requests)
        rss_kb = _rss_kb(daemon.pid)
        return {
            "stream_runs": runs,
            "requests_per_stream_run": requests / runs if runs else float("nan"),
            "records_rows_written": _rows_written_since(store, since),
            "daemon_rss_mb": rss_kb / 1024,
        }
    finally:
        daemon.terminate()
        daemon.cleanup()
        store.close()
        sim.stop()


def _rows_written_since(store: Store, since: datetime) -> int:
    """Records rows inserted, updated or tombstoned after `since`."""
    with store.engine.connect() as connection:
        value = connection.execute(
            sa.select(sa.func.count()).where(
                sa.or_(
                    records.c.last_seen_at > since,
                    records.c.first_seen_at > since,
                    records.c.deleted_at > since,
                )
            )
        ).scalar()
    return int(value or 0)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL for the replica figure")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutdowns = [sigterm_seconds(_fresh(root, f"s{n}")) for n in range(args.runs)]
        figures["sigterm_exit_seconds"] = _summary(shutdowns)
        try:
            takeovers = [takeover_seconds(_fresh(root, f"t{n}"), args.pg) for n in range(args.runs)]
            figures["kill9_takeover_seconds(lease_interval=1s)"] = _summary(takeovers)
        except sa.exc.OperationalError as exc:
            figures["kill9_takeover_seconds"] = f"skipped: PostgreSQL unavailable ({exc.orig})"
        figures["no_change_cycle"] = no_change_cycle(_fresh(root, "n"))
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


def _fresh(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "runs": len(values),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


if __name__ == "__main__":
    main()
