"""systemd's notification protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

A datagram of `KEY=value` lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading
'@' means the abstract namespace). Outside systemd the variable is unset and every call is a
no-op, so the daemon runs the same way from a terminal.
"""

from __future__ import annotations

import os
import socket
import time

from pmsync.logs import get_logger

log = get_logger("pmsync.daemon")


class Notifier:
    """Sends notifications to the service manager, if there is one."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send `FIELD=value` lines (e.g. READY="1", STATUS="..."); False if not delivered."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message, self.address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def reloading(self) -> None:
        self.send(RELOADING="1", STATUS="reloading configuration")

    def stopping(self) -> None:
        self.send(STOPPING="1", STATUS="stopping: finishing the pages in hand")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog when half its interval has passed; True when a ping was sent."""
        if self.watchdog_interval is None:
            return False
        moment = time.monotonic() if now is None else now
        if moment - self._last_ping < self.watchdog_interval / 2:
            return False
        self._last_ping = moment
        return self.send(WATCHDOG="1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and other transports are not used by the units we ship


def _watchdog_interval(env: dict[str, str]) -> float | None:
    """Seconds between required pings, when the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        return None
