"""Run `pmsync run` as a real process against in-process simulators, and watch what it does.

The daemon logs JSON lines to a file; tests wait for conditions (an event, a stored row, a
request at a simulator) with a deadline, never for a fixed time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from werkzeug.wrappers import Request, Response

from pmsync.simulators.zendesk import ZendeskSimulator

REPO = Path(__file__).resolve().parent.parent


class SlowZendesk(ZendeskSimulator):
    """The Zendesk simulator with a delay on export pages, so a sync takes a while, and a way to
    hold export requests until the test lets them go (an API that hangs)."""

    latency = 0.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.held = 0
        self.hold_until = threading.Event()
        self.hold_until.set()

    def _dispatch(self, request: Request) -> Response:
        if "/incremental/" in request.path:
            if not self.hold_until.is_set():
                with self.lock:
                    self.held += 1
                self.hold_until.wait(60)
            if self.latency:
                time.sleep(self.latency)
        return super()._dispatch(request)


def start_sim(**kwargs: Any) -> SlowZendesk:
    sim = SlowZendesk(incremental_per_minute=None, plan_per_minute=None, **kwargs)
    sim.start()
    return sim


def token_env(name: str) -> str:
    return f"PMSYNC_TEST_TOKEN_{name.upper()}"


def copy_mappings(directory: Path) -> Path:
    target = directory / "mappings"
    shutil.copytree(REPO / "mappings", target)
    return target


def write_daemon_config(
    directory: Path,
    *,
    store_url: str,
    sims: Mapping[str, ZendeskSimulator],
    mappings: Path | None = None,
    poll: str = "0.3s",
    page_size: int = 1000,
    streams: list[str] | None = None,
    daemon: str = "",
    lease_interval: str = "1s",
) -> Path:
    """A pmsync.toml with one Zendesk connector per simulator and fast daemon timings."""
    lines = [
        "[store]",
        f'url = "{store_url}"',
        "[mappings]",
        f'paths = ["{mappings or REPO / "mappings"}"]',
        "[log]",
        'level = "info"',
        'format = "json"',
        "[sync]",
        'initial_backoff = "0.05s"',
        'max_backoff = "0.5s"',
        "max_attempts_without_progress = 3",
        "[daemon]",
        "http_port = 0",
        f'lease_interval = "{lease_interval}"',
        'failure_backoff = "0.2s"',
        'max_failure_backoff = "1s"',
        daemon,
    ]
    for name, sim in sims.items():
        lines += [
            f"[connectors.{name}]",
            'type = "zendesk"',
            f'base_url = "{sim.base_url}"',
            f'poll_interval = "{poll}"',
            f"page_size = {page_size}",
            "incremental_requests_per_minute = 100000",
            "requests_per_minute = 100000",
        ]
        if streams is not None:
            lines.append("streams = [" + ", ".join(f'"{s}"' for s in streams) + "]")
        lines += [
            f"[connectors.{name}.credentials]",
            f'email = "{sim.email}"',
            f'api_token = {{ env = "{token_env(name)}" }}',
        ]
    path = directory / "pmsync.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def daemon_env(sims: Mapping[str, ZendeskSimulator]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    for name, sim in sims.items():
        env[token_env(name)] = sim.token
    return env


def wait_until(
    condition: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.1
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class DaemonProcess:
    """One `pmsync run` process with its log."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config = config
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def start(self) -> DaemonProcess:
        self._port = None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pmsync.app.cli", "-c", str(self.config), "run"],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_bytes().splitlines():
            if not line.startswith(b"{"):
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def wait_for(self, name: str, *, after: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        """The first `name` event beyond the first `after` ones."""

        def seen() -> dict[str, Any] | None:
            events = self.events(name)
            if len(events) > after:
                return events[after]
            self._check_running(name)
            return None

        found: dict[str, Any] = wait_until(seen, f"log event {name}", timeout)
        return found

    def _check_running(self, waiting_for: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text()[-3000:]
            raise AssertionError(
                f"pmsync exited ({self.process.returncode}) while waiting for {waiting_for}:\n"
                f"{tail}"
            )

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = int(self.wait_for("http_listening")["port"])
        return self._port

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def ready(self) -> dict[str, Any]:
        status, body = self.get("/readyz")
        found: dict[str, Any] = orjson.loads(body)
        found["status"] = status
        return found

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; returns the exit code and the seconds it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a test may have stopped it
            self.process.kill()
            self.process.wait(10)


def run_cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pmsync.app.cli", "-c", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
