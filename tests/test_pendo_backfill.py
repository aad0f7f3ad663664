"""A 90-day Pendo backfill killed with SIGKILL resumes from the last finished day slice.

The sync runs as a real `pmsync sync --once` subprocess against the simulator; the test kills
it mid-backfill, checks that the store holds exactly the slices its cursor covers, runs the
sync again, and checks every (account, day) against the simulator's own totals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from pmsync.simulators.pendo import FEATURES, PendoSimulator, generate
from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "PMSYNC_TEST_PENDO_KEY"
BACKFILL_DAYS = 90
SLICES_BEFORE_KILL = 12
EXPORT_CSV = next(feature_id for feature_id, name in FEATURES if name == "Export CSV")


@pytest.fixture
def pendo_sim() -> Iterator[PendoSimulator]:
    sim = PendoSimulator(latency=0.01)  # slow enough that the kill lands mid-backfill
    sim.start()
    generate(sim, accounts=8, days=BACKFILL_DAYS + 5, seed=21)
    yield sim
    sim.stop()


def write_config(directory: Path, sim: PendoSimulator) -> Path:
    path = directory / "pmsync.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///{directory / "pmsync.db"}"
[mappings]
paths = ["{REPO / "mappings" / "pendo.toml"}"]
[sync]
initial_backoff = "0.05s"
[connectors.pendo]
type = "pendo"
base_url = "{sim.base_url}"
integration_key = {{ env = "{KEY_ENV}" }}
streams = ["usage"]
backfill_days = {BACKFILL_DAYS}
slice_days = 1
reread_days = 3
requests_per_minute = 100000
"""
    )
    return path


def sync_command(config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pmsync.app.cli",
        "--config",
        str(config),
        "sync",
        "--once",
        "--json",
    ]


def usage_slices_requested(sim: PendoSimulator) -> list[str]:
    """First day of every usage slice the simulator was asked for, in order."""
    return [
        r.json()["request"]["name"].removeprefix("pmsync-usage-")
        for r in sim.requests_to("/api/v1/aggregation", "POST")
        if r.json()["request"]["name"].startswith("pmsync-usage-")
    ]


def stored_usage(store: Store) -> dict[str, dict[str, object]]:
    return {r.key: r.unified for r in store.iter_records(connector="pendo", stream="usage")}


@pytest.mark.slow
def test_backfill_resumes_after_kill_9_without_counting_a_day_twice(
    tmp_path: Path, pendo_sim: PendoSimulator
) -> None:
    config = write_config(tmp_path, pendo_sim)
    env = {**os.environ, KEY_ENV: pendo_sim.integration_key}
    yesterday = pendo_sim.today() - timedelta(days=1)
    first_day = yesterday - timedelta(days=BACKFILL_DAYS - 1)

    child = subprocess.Popen(
        sync_command(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(usage_slices_requested(pendo_sim)) < SLICES_BEFORE_KILL:
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the sync made no progress"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    store = Store(f"sqlite:///{tmp_path / 'pmsync.db'}")
    state = store.stream_state("pendo", "usage")
    assert state is not None
    assert state.cursor is not None
    last_done = date.fromisoformat(orjson.loads(state.cursor)["last_day"])
    assert first_day <= last_done < yesterday - timedelta(days=10), "kill landed too late"
    killed = stored_usage(store)
    # The cursor is never ahead of the rows, and no row is beyond the cursor.
    assert max(str(u["day"]) for u in killed.values()) == last_done.isoformat()

    pendo_sim.reset_log()
    finished = subprocess.run(
        sync_command(config), env=env, capture_output=True, timeout=180, check=False
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    if pendo_sim.today() - timedelta(days=1) != yesterday:
        pytest.skip("the day changed during the test")

    resumed = usage_slices_requested(pendo_sim)
    reread_window = yesterday - timedelta(days=2)  # its 3 days are read as one slice
    expected_days = [
        (last_done + timedelta(days=n)).isoformat()
        for n in range(1, (reread_window - last_done).days + 1)
    ]
    assert resumed == expected_days, "the resumed run must start after the last finished slice"

    truth = pendo_sim.usage_truth(first_day, yesterday)
    export_csv = pendo_sim.usage_truth(first_day, yesterday, feature_id=EXPORT_CSV)
    stored = stored_usage(store)
    assert set(stored) == {f"{account}:{day}" for account, day in truth}
    for (account, day), totals in truth.items():
        unified = stored[f"{account}:{day}"]
        assert unified["events"] == totals["numEvents"], (account, day)
        assert unified["minutes"] == totals["numMinutes"], (account, day)
        assert unified["active_visitors"] == totals["activeVisitors"], (account, day)
        expected_exports = export_csv.get((account, day), {}).get("numEvents", 0)
        assert unified["export_csv_events"] == expected_exports, (account, day)
    assert sum(int(str(u["events"])) for u in stored.values()) == sum(
        t["numEvents"] for t in truth.values()
    )
    store.close()
