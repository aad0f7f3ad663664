"""Replicas on PostgreSQL when one of them hangs (issue 12, item 5).

A replica stopped with SIGSTOP (a VM pause, a long GC, a half-open network) keeps its TCP
sessions. Its connectors must still be read: others take them over once its leases expire, and
when it wakes it must write nothing under the leases it lost. What each replica writes is seen
by the database itself: a trigger records the writing session's application_name (each daemon
runs with its own PGAPPNAME) for every row written to the store's tables.
"""

from __future__ import annotations

import itertools
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pmsync.simulators.zendesk import generate
from pmsync.sync.store.store import Store
from tests.daemon_helpers import (
    DaemonProcess,
    SlowZendesk,
    daemon_env,
    start_sim,
    wait_until,
    write_daemon_config,
)

LEASE_INTERVAL = 2.0
POLL = 0.5
AUDITED = ("records", "stream_state", "dead_letters", "writeback_ledger", "writeback_intents")

_AUDIT = [
    "CREATE TABLE write_audit (app text, at timestamptz, tbl text, connector text)",
    "CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO write_audit VALUES (current_setting('application_name'), clock_timestamp(),"
    " TG_TABLE_NAME, CASE WHEN TG_OP = 'DELETE' THEN OLD.connector ELSE NEW.connector END);"
    " RETURN NULL; END $$",
    *(
        f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION audit_write()"
        for table in AUDITED
    ),
]


def _audited_store(pg_url: str) -> Store:
    store = Store(pg_url)  # migrated
    with store.engine.begin() as connection:
        for statement in _AUDIT:
            connection.exec_driver_sql(statement)
    return store


def _writes(store: Store, app: str, connector: str) -> list[float]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT at FROM write_audit WHERE app = :app AND connector = :connector"),
            {"app": app, "connector": connector},
        )
        return sorted(row[0].timestamp() for row in rows)


def _longest_gap(sim: SlowZendesk, since: float, until: float) -> float:
    """The longest time without a request to `sim` between `since` and `until`, counting from
    the last request before `since`."""
    times = sorted(r.at for r in sim.requests)
    before = [t for t in times if t <= since]
    inside = [t for t in times if since < t <= until]
    points = [before[-1] if before else since, *inside, until]
    return max(b - a for a, b in itertools.pairwise(points))


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_stopped_replica_loses_its_connectors_and_writes_nothing_when_it_wakes(
    tmp_path: Path, cleanup: list[Any], pg_url: str
) -> None:
    store = _audited_store(pg_url)
    sims = {f"z{n}": start_sim() for n in (1, 2, 3)}
    cleanup.extend(sims.values())
    for seed, sim in enumerate(sims.values()):
        generate(sim, organizations=3, users=10, tickets=40, seed=seed)
    config = write_daemon_config(
        tmp_path,
        store_url=pg_url,
        sims=sims,
        poll=f"{POLL}s",
        page_size=20,
        lease_interval=f"{LEASE_INTERVAL}s",
    )
    processes = {}
    for n in range(3):
        env = {**daemon_env(sims), "PGAPPNAME": f"replica{n}"}
        processes[f"replica{n}"] = DaemonProcess(config, env, tmp_path / f"replica{n}.log")
    for process in processes.values():
        cleanup.append(process.start())
    wait_until(
        lambda: sorted(len(p.ready()["owned_connectors"]) for p in processes.values()) == [1, 1, 1],
        "each replica to own one connector",
        timeout=60,
    )
    app, victim = next(iter(processes.items()))
    orphan = victim.ready()["owned_connectors"][0]
    wait_until(lambda: _writes(store, app, orphan), "the victim to write its connector's rows")
    victim.signal(signal.SIGSTOP)
    stopped_at = time.time()
    added = str(990_200)
    sims[orphan].put_ticket(
        {"id": 990_200, "subject": "while stopped", "status": "open", "tags": []},
        at=sims[orphan].now() - 61,
    )
    time.sleep(3 * LEASE_INTERVAL)
    continued_at = time.time()
    victim.signal(signal.SIGCONT)

    bound = 2 * LEASE_INTERVAL + POLL
    for name, sim in sims.items():
        gap = _longest_gap(sim, stopped_at, continued_at)
        assert gap <= bound, f"{name} went unread for {gap:.1f}s (bound {bound:.1f}s)"
    wait_until(lambda: added in store.live_keys(orphan, "tickets"), "the orphan's new ticket")

    wait_until(
        lambda: [
            e
            for e in victim.events("lease_lost")
            if e.get("connector") == orphan and _at(e) >= stopped_at
        ],
        "the woken replica to see it lost its connector",
    )
    time.sleep(LEASE_INTERVAL)  # room for anything the woken replica still had in hand
    regained = [
        _at(e)
        for e in victim.events("lease_acquired")
        if e.get("connector") == orphan and _at(e) > continued_at
    ]
    fenced_until = min(regained, default=time.time())
    stale = [t for t in _writes(store, app, orphan) if stopped_at < t < fenced_until]
    assert stale == [], f"the woken replica wrote {len(stale)} rows of {orphan}"
    others = [a for a in processes if a != app]
    assert any(_writes(store, other, orphan) for other in others)  # the successor wrote them

    for process in processes.values():
        assert process.terminate()[0] == 0
    store.close()
