"""Customer data stays private outside systemd too (issue 12, item 4).

The store holds raw customer payloads. Started by hand under the usual umask 022, `pmsync
sync`, `pmsync demo` and a daemon created the store, its WAL and SHM files, the upgrade
backups and the lock files 0644 (the unit's UMask=0077 hid it). Each test here runs under
umask 022 and looks at the mode of every file and directory pmsync made.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmsync.app.demo import run_demo
from pmsync.sync.store.store import Store
from tests.daemon_helpers import (
    DaemonProcess,
    daemon_env,
    run_cli,
    start_sim,
    wait_until,
    write_daemon_config,
)
from tests.store_support import downgrade_one_step


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, str]:
    """Every file and directory under `root` (itself included) with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def loose(found: dict[str, str], root: Path) -> dict[str, str]:
    """The entries others may read: anything but 0600 files and 0700 directories."""
    return {
        name: mode
        for name, mode in found.items()
        if mode != ("0o700" if (root / name).is_dir() else "0o600")
    }


def test_sync_and_a_hand_started_daemon_create_private_files(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    sim = start_sim()
    cleanup.append(sim)
    sims = {"zendesk": sim}
    sim.put_ticket({"id": 1, "subject": "printer on fire", "status": "open"})
    state = tmp_path / "state"  # not there yet: pmsync makes it, and the one inside
    config = write_daemon_config(
        tmp_path, store_url=f"sqlite:///{state / 'data' / 'pmsync.db'}", sims=sims, poll="1h"
    )
    env = daemon_env(sims)

    done = run_cli(config, env, "sync", "--once")
    assert done.returncode == 0, done.stderr
    assert (state / "data" / "pmsync.db").exists()
    assert loose(modes(state), state) == {}

    daemon = DaemonProcess(config, env, tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    wait_until(lambda: daemon.events("stream_done"), "the first cycle")
    found = modes(state)  # while the daemon holds the store open
    assert {"data/pmsync.db-wal", "data/pmsync.db-shm", "data/pmsync.db.lock"} <= set(found)
    assert loose(found, state) == {}
    assert daemon.terminate()[0] == 0


def test_an_upgrade_backup_is_private_even_when_the_store_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pmsync.db'}"
    store = Store(url)
    downgrade_one_step(store)
    store.close()
    (tmp_path / "pmsync.db").chmod(0o644)  # an older pmsync made it so

    Store(url).close()
    backups = list(tmp_path.glob("pmsync.db.before-*"))
    assert len(backups) == 1
    assert oct(stat.S_IMODE(backups[0].stat().st_mode)) == "0o600"


@pytest.mark.slow
def test_the_demo_keeps_its_directory_and_store_private(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    run = run_demo(directory, pendo=False)
    try:
        found = modes(directory)
    finally:
        run.close()
    store = run.demo.store_path.name
    assert {store, f"{store}-wal", f"{store}-shm"} <= set(found)  # the store is still open
    private = {
        name: mode
        for name, mode in found.items()
        if name == "." or name.startswith((store, "secrets", "demo.env"))
    }
    assert loose(private, directory) == {}
