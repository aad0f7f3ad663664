"""The daemon's health port under a flood of idle connections (issue 12, item 3).

A thread per connection with no timeout let 1,017 idle connections use all 1,024 file
descriptors of the daemon: /healthz stopped answering, and the store and the APIs would have
found no descriptor either. The daemon here runs with the 1,024 descriptors a unit without
LimitNOFILE gets; 1,100 connections are opened and left silent.
"""

from __future__ import annotations

import os
import resource
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.daemon_helpers import (
    DaemonProcess,
    daemon_env,
    start_sim,
    wait_until,
    write_daemon_config,
)

IDLE_CONNECTIONS = 1_100
DAEMON_DESCRIPTORS = 1_024
HEALTH_PORT_SHARE = 64  # descriptors the port may hold at most (its cap is 32 connections)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def idle_connection(port: int) -> socket.socket | None:
    """A connection that never sends a byte; None when the port takes no more connections."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.settimeout(2)
    try:
        connection.connect(("127.0.0.1", port))
    except OSError:
        connection.close()
        return None
    return connection


def test_idle_connections_neither_silence_healthz_nor_use_up_descriptors(
    tmp_path: Path, cleanup: list[Any]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 200:
        pytest.skip(f"the test process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE_CONNECTIONS + 200), hard))
    sim = start_sim()
    cleanup.append(sim)
    sims = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path, store_url=f"sqlite:///{tmp_path / 'pmsync.db'}", sims=sims, poll="1h"
    )
    daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "daemon.log").start()
    cleanup.append(daemon)
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (DAEMON_DESCRIPTORS, DAEMON_DESCRIPTORS))
    wait_until(lambda: daemon.events("stream_done"), "the first cycle")
    assert daemon.get("/healthz")[0] == 200
    before = open_descriptors(daemon.pid)

    opened = 0
    for _ in range(IDLE_CONNECTIONS):
        connection = idle_connection(daemon.port)
        if connection is None:
            break  # the daemon no longer accepts: the probe below tells whether it answers
        cleanup.append(connection)
        opened += 1

    # The probe queues behind every idle connection: answered, it proves all were taken.
    status, body = daemon.get("/healthz")  # urlopen gives up after 10 s
    assert status == 200
    assert orjson.loads(body)["ok"] is True
    assert open_descriptors(daemon.pid) <= before + HEALTH_PORT_SHARE
    assert opened == IDLE_CONNECTIONS  # it kept taking connections, closing the idle ones
    assert daemon.events("http_connections_at_limit")
    assert daemon.terminate()[0] == 0
