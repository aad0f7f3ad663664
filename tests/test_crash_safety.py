"""kill -9 at random moments: nothing lost, nothing duplicated, no cursor ahead of its data."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.simulators.zendesk.app import _decode_cursor
from tests.conftest import write_config

KILLS = 22


def live_view(runtime: Runtime) -> dict[tuple[str, str], str | None]:
    """(stream, key) -> content hash for live records, None for tombstones."""
    view: dict[tuple[str, str], str | None] = {}
    for record in runtime.store.iter_records(include_deleted=True):
        view[(record.stream, record.key)] = (
            None
            if record.deleted_at
            else orjson.dumps(record.raw, option=orjson.OPT_SORT_KEYS).decode()
        )
    return view


def assert_ticket_cursor_not_ahead(
    runtime: Runtime, sim: ZendeskSimulator
) -> tuple[int, int] | None:
    """Every ticket at or before the committed cursor is stored with its current content."""
    state = runtime.store.stream_state("zendesk", "tickets")
    if state is None or state.cursor is None:
        return None
    after = orjson.loads(state.cursor).get("after_cursor")
    if after is None:
        return None
    position = _decode_cursor(after)
    assert position is not None
    stored = {r.key: r for r in runtime.store.iter_records(stream="tickets", include_deleted=True)}
    for ts, ticket_id in sim.tickets.order:
        if (ts, ticket_id) > position:
            break
        ticket = sim.tickets.items[ticket_id]
        record = stored.get(str(ticket_id))
        assert record is not None, f"ticket {ticket_id} is behind the cursor but not stored"
        if ticket["status"] == "deleted":
            assert record.deleted_at is not None, f"ticket {ticket_id} should be a tombstone"
        else:
            assert record.raw["updated_at"] == ticket["updated_at"], f"ticket {ticket_id} is stale"
    return position


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, zendesk_sim: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = zendesk_sim
    generate(
        sim,
        organizations=100,
        users=500,
        tickets=5000,
        seed=99,
        jira_keys=[(str(30_000 + n), f"CR-{n}") for n in range(20)],
    )
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    config = write_config(crash_dir, zendesk_url=sim.base_url, page_size=100)
    env = {**os.environ, "PMSYNC_TEST_ZENDESK_TOKEN": zendesk_token, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "pmsync.app.cli",
        "--log-level",
        "error",
        "-c",
        str(config),
        "sync",
        "--once",
    ]
    rng = random.Random(2024)
    positions = set()
    killed = 0
    for round_number in range(KILLS):
        sim.reset_log()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Kill after a random number of API answers plus a random few milliseconds: the run
        # dies while fetching, mapping, committing or sweeping, at a different page each time.
        target = rng.randint(1, 45 if round_number == 0 else 12)
        while process.poll() is None and len(sim.requests) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.06))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        _out, err = process.communicate(timeout=60)
        assert b"Traceback" not in err, err.decode()
        observer = Runtime.load(str(config))
        position = assert_ticket_cursor_not_ahead(observer, sim)
        positions.add(position)
        observer.close()
        # The source keeps changing between crashes, so every round has work in flight.
        for ticket_id in rng.sample(sorted(sim.tickets.items), 1000):
            ticket = sim.ticket_record(ticket_id)
            if ticket["status"] != "deleted":
                sim.put_ticket(
                    {**ticket, "subject": f"round {round_number}"},
                    at=sim.now() - 200 + round_number,
                )
        sim.delete_ticket(rng.choice(sorted(sim.tickets.items)), at=sim.now() - 200 + round_number)
    assert killed >= KILLS - 2, f"only {killed} runs were killed before finishing"
    assert len(positions) >= 8, f"kills hit too few distinct moments: {len(positions)}"

    finish = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert finish.returncode == 0, finish.stderr.decode()
    crashed = Runtime.load(str(config))
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = Runtime.load(str(write_config(clean_dir, zendesk_url=sim.base_url, page_size=100)))
    assert all(r.status == "ok" for r in clean.run_once())
    assert live_view(crashed) == live_view(clean)
    for stream in ("tickets", "users", "organizations", "jira_links"):
        crashed_state = crashed.store.stream_state("zendesk", stream)
        clean_state = clean.store.stream_state("zendesk", stream)
        assert crashed_state is not None, stream
        assert clean_state is not None, stream
        assert crashed_state.cursor == clean_state.cursor, stream
    crashed.close()
    clean.close()
