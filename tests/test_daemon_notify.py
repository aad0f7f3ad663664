"""systemd notifications over a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsync.app.daemon.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_ready_and_status_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("running 2 connectors")
    assert sock.recv(4096).decode().splitlines() == ["READY=1", "STATUS=running 2 connectors"]
    notifier.stopping()
    assert sock.recv(4096).decode().splitlines()[0] == "STOPPING=1"
    notifier.close()


def test_abstract_namespace_addresses_work() -> None:
    name = f"pmsync-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send(RELOADING="1")
        assert sock.recv(100) == b"RELOADING=1"
    finally:
        sock.close()


def test_watchdog_pings_at_half_its_interval(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval == 10.0
    assert notifier.watchdog(now=100.0)
    assert sock.recv(100) == b"WATCHDOG=1"
    assert not notifier.watchdog(now=104.0)  # too early
    assert notifier.watchdog(now=105.0)


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None
    assert not notifier.watchdog()


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.send(READY="1")
