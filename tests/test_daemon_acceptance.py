"""`pmsync run` as a process against Zendesk simulators: the acceptance criteria of issue 7.

Each test starts real daemons (subprocesses) with short poll, back-off and lease times, and
judges them by what reached the store, the simulators' request logs, the daemon's logs and its
HTTP endpoint.
"""

from __future__ import annotations

import functools
import itertools
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pmsync.simulators.zendesk import generate
from pmsync.sync.store.store import Store
from tests.daemon_helpers import (
    DaemonProcess,
    SlowZendesk,
    copy_mappings,
    daemon_env,
    run_cli,
    start_sim,
    wait_until,
    write_daemon_config,
)

SIGTERM_BOUND = 10.0


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'pmsync.db'}"


def live_ticket_ids(sim: SlowZendesk) -> set[str]:
    return {str(i) for i, t in sim.tickets.items.items() if t.get("status") != "deleted"}


def new_ticket(sim: SlowZendesk, ticket_id: int, subject: str = "new request") -> str:
    """A ticket changed a moment ago (just outside the export's one-minute window)."""
    sim.put_ticket(
        {"id": ticket_id, "subject": subject, "status": "open", "tags": []}, at=sim.now() - 61
    )
    return str(ticket_id)


def state(store: Store, connector: str, stream: str) -> Any:
    return store.stream_state(connector, stream)


def synced(store: Store, connector: str, stream: str) -> Any:
    """When the stream last caught up (None before its first success)."""
    found = store.stream_state(connector, stream)
    return found.last_success_at if found else None


# ---- SIGTERM ---------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_mid_sync_exits_quickly_loses_nothing_and_the_next_start_resumes(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    sim = start_sim()
    cleanup.append(sim)
    generate(sim, organizations=10, users=30, tickets=1500, seed=5)
    sim.latency = 0.05
    sims = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path,
        store_url=sqlite_url(tmp_path),
        sims=sims,
        poll="1h",
        page_size=50,
        streams=["tickets"],
    )
    daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "first.log").start()
    cleanup.append(daemon)

    wait_until(lambda: len(sim.requests_to("/api/v2/incremental/tickets")) >= 5, "5 pages")
    code, seconds = daemon.terminate()

    assert code == 0
    assert seconds < SIGTERM_BOUND
    interrupted = daemon.events("stream_interrupted")
    assert interrupted, "the sync was not in progress when SIGTERM arrived"
    assert daemon.events("daemon_stopped")[0]["abandoned"] == 0
    store = Store(sqlite_url(tmp_path))
    saved = state(store, "zendesk", "tickets")
    assert saved.cursor is not None
    assert saved.last_success_at is None  # stopped before catching up
    counts = store.stream_counts()[("zendesk", "tickets")]
    assert counts.live + counts.deleted == 50 * interrupted[0]["pages"]  # every committed page

    sim.reset_log()
    sim.latency = 0.0
    again = DaemonProcess(config, daemon_env(sims), tmp_path / "second.log").start()
    cleanup.append(again)
    wait_until(lambda: state(store, "zendesk", "tickets").last_success_at, "the resumed sync")
    first = sim.requests_to("/api/v2/incremental/tickets")[0]
    assert first.query.get("cursor") == orjson.loads(saved.cursor)["after_cursor"]
    assert store.live_keys("zendesk", "tickets") == live_ticket_ids(sim)
    assert store.stream_counts()[("zendesk", "tickets")].deleted == len(sim.tickets.items) - len(
        live_ticket_ids(sim)
    )
    assert again.terminate()[0] == 0
    store.close()


@pytest.mark.slow
def test_sigterm_while_an_api_hangs_exits_after_the_shutdown_timeout(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    sim = start_sim()
    cleanup.append(sim)
    generate(sim, organizations=5, users=20, tickets=100, seed=4)
    sims = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path,
        store_url=sqlite_url(tmp_path),
        sims=sims,
        poll="1h",
        streams=["tickets"],
        daemon='shutdown_timeout = "2s"',
    )
    sim.hold_until.clear()  # every export request now hangs until released
    daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    try:
        wait_until(lambda: sim.held >= 1, "a request in flight")
        code, seconds = daemon.terminate()
    finally:
        sim.hold_until.set()
    assert code == 0
    assert seconds < SIGTERM_BOUND
    stopped = daemon.wait_for("shutdown_timeout")
    assert stopped["connectors"] == ["zendesk"]
    store = Store(sqlite_url(tmp_path))
    assert ("zendesk", "tickets") not in store.stream_counts()  # the hung page never committed
    store.close()


# ---- one API down, the others fresh ------------------------------------------------------


@pytest.mark.slow
def test_an_outage_of_one_api_leaves_the_others_fresh_and_heals_by_itself(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    healthy, failing = start_sim(), start_sim()
    cleanup += [healthy, failing]
    for seed, sim in ((1, healthy), (2, failing)):
        generate(sim, organizations=5, users=20, tickets=60, seed=seed)
    sims = {"healthy": healthy, "failing": failing}
    config = write_daemon_config(tmp_path, store_url=sqlite_url(tmp_path), sims=sims)
    env = daemon_env(sims)
    daemon = DaemonProcess(config, env, tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    store = Store(sqlite_url(tmp_path))
    for name in sims:
        wait_until(functools.partial(synced, store, name, "tickets"), f"{name} synced")

    outage_ends = time.time() + 12
    failing.inject(503, times=None, until=outage_ends)
    outage_started = time.time()
    wait_until(
        lambda: (
            (s := state(store, "failing", "tickets")).status == "failed"
            and "503" in (s.last_error or "")
        ),
        "the failing stream to report its 503",
    )
    done = run_cli(config, env, "status", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["stream"]: row for row in orjson.loads(done.stdout)}
    down = rows["failing.tickets"]
    assert down["status"] == "failed"
    assert down["failures"] >= 1
    assert down["next_attempt_at"] is not None
    assert "503" in down["last_error"]
    assert rows["healthy.tickets"]["status"] == "ok"

    fresh = new_ticket(healthy, 990_001)
    waiting = new_ticket(failing, 990_002)
    wait_until(lambda: fresh in store.live_keys("healthy", "tickets"), "the healthy API's change")
    assert time.time() < outage_ends, "the healthy connector only caught up after the outage"
    assert waiting not in store.live_keys("failing", "tickets")
    assert state(store, "healthy", "users").last_success_at.timestamp() > outage_started

    wait_until(
        lambda: waiting in store.live_keys("failing", "tickets"),
        "the failing connector to recover",
        timeout=40,
    )
    wait_until(lambda: state(store, "failing", "tickets").status == "ok", "status ok again")
    assert state(store, "failing", "tickets").failures == 0
    assert daemon.events("stream_backing_off")
    assert daemon.terminate()[0] == 0
    store.close()


# ---- SIGHUP --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sighup_with_a_broken_mapping_keeps_the_running_one_and_logs_why(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    sim = start_sim()
    cleanup.append(sim)
    generate(sim, organizations=5, users=20, tickets=40, seed=3)
    mappings = copy_mappings(tmp_path)
    mapping_file = mappings / "zendesk.toml"
    original = mapping_file.read_text()
    sims = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path, store_url=sqlite_url(tmp_path), sims=sims, mappings=mappings
    )
    daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    store = Store(sqlite_url(tmp_path))
    wait_until(lambda: synced(store, "zendesk", "tickets"), "the first sync")

    mapping_file.write_text(
        original.replace('subject = "subject"\n', 'subject = "subject"\nbogus_field = "x"\n')
    )
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_for("reload_rejected")
    assert any(
        str(mapping_file) in problem and "bogus_field" in problem
        for problem in rejected["problems"]
    ), rejected
    assert daemon.events("config_problem")

    kept = new_ticket(sim, 990_010, subject="Still Synced")
    wait_until(lambda: kept in store.live_keys("zendesk", "tickets"), "a sync after the reload")
    assert _unified(store, kept)["subject"] == "Still Synced"  # the old mapping runs

    mapping_file.write_text(
        original.replace(
            'subject = "subject"\n', 'subject = { path = "subject", transforms = ["upper"] }\n'
        )
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reloaded")
    changed = new_ticket(sim, 990_011, subject="Now Upper")
    wait_until(lambda: changed in store.live_keys("zendesk", "tickets"), "a sync after the fix")
    assert _unified(store, changed)["subject"] == "NOW UPPER"  # the new mapping runs
    assert daemon.terminate()[0] == 0
    store.close()


def _unified(store: Store, key: str) -> dict[str, Any]:
    for record in store.iter_records(connector="zendesk", stream="tickets"):
        if record.key == key:
            return record.unified
    raise AssertionError(f"ticket {key} is not stored")


# ---- /metrics --------------------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_match_what_was_synced(tmp_path: Path, cleanup: list[Any]) -> None:
    sim = start_sim()
    cleanup.append(sim)
    generate(sim, organizations=8, users=25, tickets=120, seed=9, jira_keys=[("10001", "P-1")])
    sim.put_ticket({"id": 990_020, "subject": "bad", "status": "open", "created_at": "not a date"})
    sims = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path, store_url=sqlite_url(tmp_path), sims=sims, poll="1h", page_size=40
    )
    daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    streams = {"tickets", "users", "organizations", "jira_links"}
    wait_until(
        lambda: {e["stream"] for e in daemon.events("stream_done")} >= streams, "the first cycle"
    )
    wait_until(lambda: daemon.ready()["status"] == 200, "readiness")
    # A first read is as good as a sweep (nothing was stored before it): no census follows it.
    assert daemon.events("sweep_done") == []

    status, body = daemon.get("/metrics")
    assert status == 200
    metrics = _Scrape(body.decode())
    store = Store(sqlite_url(tmp_path))
    counts = store.stream_counts()
    tickets = {"connector": "zendesk", "stream": "tickets"}

    assert metrics[("pmsync_records_read_total", tickets)] == len(sim.tickets.items)
    written = sum(
        metrics[("pmsync_records_written_total", {**tickets, "change": change})]
        for change in ("inserted", "deleted")
    )
    stored = counts[("zendesk", "tickets")]
    assert written == stored.live + stored.deleted
    assert metrics[("pmsync_dead_lettered_total", tickets)] == 1
    assert metrics[("pmsync_dead_letters_open", tickets)] == stored.dead_letters == 1
    for stream in ("tickets", "users", "organizations", "jira_links"):
        labels = {"connector": "zendesk", "stream": stream}
        saved = state(store, "zendesk", stream)
        stamp = metrics[("pmsync_stream_last_success_timestamp_seconds", labels)]
        assert stamp == pytest.approx(saved.last_success_at.timestamp(), abs=1e-3)
        assert 0 <= metrics[("pmsync_stream_freshness_seconds", labels)] < 3600
        assert metrics[("pmsync_stream_runs_total", {**labels, "status": "ok"})] == 1
    answered = metrics[("pmsync_api_requests_total", {"connector": "zendesk", "code": "200"})]
    assert answered == len(sim.requests)
    plan = {"connector": "zendesk", "rule": "plan"}
    assert metrics[("pmsync_api_quota_used", plan)] == len(sim.requests)
    assert metrics[("pmsync_api_quota_limit", plan)] == 100_000
    assert metrics[("pmsync_writebacks_planned_total", {"connector": "zendesk"})] == 0
    assert metrics[("pmsync_connector_owned", {"connector": "zendesk"})] == 1

    status, body = daemon.get("/healthz")
    assert status == 200
    assert orjson.loads(body)["dead_workers"] == []

    second = DaemonProcess(config, daemon_env(sims), tmp_path / "second.log").start()
    cleanup.append(second)
    assert second.process is not None
    assert second.process.wait(30) == 78  # one daemon per SQLite file
    assert "another pmsync process" in (tmp_path / "second.log").read_text()
    assert daemon.terminate()[0] == 0
    store.close()


class _Scrape:
    """Samples of one /metrics answer, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self._found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self._found[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __getitem__(self, key: tuple[str, dict[str, str]]) -> float:
        name, labels = key
        return self._found[(name, frozenset(labels.items()))]


# ---- configuration errors --------------------------------------------------------------------


def test_a_configuration_problem_exits_78_with_the_problem_named(tmp_path: Path) -> None:
    config = write_daemon_config(
        tmp_path, store_url=sqlite_url(tmp_path), sims={}, daemon="lease_time = 3"
    )
    done = run_cli(config, {}, "run")
    assert done.returncode == 78
    assert "daemon.lease_time" in done.stderr
    assert "Traceback" not in done.stderr


# ---- replicas on PostgreSQL ----------------------------------------------------------------

LEASE_INTERVAL = 1.0
TAKEOVER_SLACK = 3.0  # process start-up of the first cycle on a loaded 2-core machine
_ENDS = ("lease_handed_over", "lease_released", "lease_lost")


def _replica_of(request: Any) -> str:
    agent = request.headers.get("user-agent", "")
    return agent.split("pmsync-replica/")[1].split()[0] if "pmsync-replica/" in agent else ""


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def _ownership(
    daemons: dict[str, DaemonProcess], killed: dict[str, float]
) -> dict[str, list[tuple[float, float, str]]]:
    """Per connector: (from, to, replica) spans in which a replica owned it, from the logs."""
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for replica, daemon in daemons.items():
        open_since: dict[str, float] = {}
        for event in daemon.events():
            name = event.get("event")
            if name == "lease_acquired":
                open_since[event["connector"]] = _at(event)
            elif name in _ENDS and event.get("connector") in open_since:
                start = open_since.pop(event["connector"])
                spans.setdefault(event["connector"], []).append((start, _at(event), replica))
        for connector, start in open_since.items():
            end = killed.get(replica, time.time())
            spans.setdefault(connector, []).append((start, end, replica))
    return spans


@pytest.mark.slow
@pytest.mark.postgres
def test_three_replicas_never_read_a_stream_together_and_take_over_after_kill_9(
    tmp_path: Path, cleanup: list[Any], pg_url: str
) -> None:
    sims = {f"z{n}": start_sim() for n in (1, 2, 3)}
    cleanup.extend(sims.values())
    for seed, sim in enumerate(sims.values()):
        generate(sim, organizations=5, users=20, tickets=100, seed=seed)
        sim.latency = 0.01
    config = write_daemon_config(tmp_path, store_url=pg_url, sims=sims, poll="0.5s", page_size=20)
    env = daemon_env(sims)
    processes = [DaemonProcess(config, env, tmp_path / f"replica{n}.log").start() for n in range(3)]
    cleanup.extend(processes)
    wait_until(
        lambda: sorted(len(p.ready()["owned_connectors"]) for p in processes) == [1, 1, 1],
        "each replica to own one connector",
        timeout=60,
    )
    daemons = {p.ready()["replica"]: p for p in processes}
    victim_id, victim = next(iter(daemons.items()))
    orphan = victim.ready()["owned_connectors"][0]
    wait_until(
        lambda: any(_replica_of(r) == victim_id for r in sims[orphan].requests),
        "the victim to read its connector",
    )

    victim.kill()
    killed_at = time.time()
    added = new_ticket(sims[orphan], 990_100)

    def taken_over() -> Any:
        return next(
            (
                r
                for r in sims[orphan].requests
                if r.at > killed_at and _replica_of(r) not in ("", victim_id)
            ),
            None,
        )

    first = wait_until(taken_over, "another replica to read the orphaned connector", timeout=30)
    takeover = first.at - killed_at
    assert takeover < LEASE_INTERVAL + TAKEOVER_SLACK, f"takeover took {takeover:.1f}s"
    store = Store(pg_url)
    wait_until(lambda: added in store.live_keys(orphan, "tickets"), "the orphan's new ticket")
    survivors = [p for p in processes if p is not victim]
    for survivor in survivors:
        assert survivor.terminate()[0] == 0

    spans = _ownership(daemons, {victim_id: killed_at})
    assert set(spans) == set(sims)
    for connector, owned in spans.items():
        ordered = sorted(owned)
        for (_start, end, who), (next_start, _end, next_who) in itertools.pairwise(ordered):
            assert end <= next_start or who == next_who, f"{connector}: {who} and {next_who}"
        requests = [r for r in sims[connector].requests if _replica_of(r)]
        assert requests
        for request in requests:
            who = _replica_of(request)
            assert any(r == who and start <= request.at <= end for start, end, r in owned), (
                f"{connector}: a request of {who} at {request.at} outside its ownership"
            )
    store.close()
