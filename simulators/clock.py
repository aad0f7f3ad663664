"""A clock that stands still until it is moved, for simulated time.

Every simulator takes `clock=`, a callable returning seconds since the epoch (the wall clock by
default). Hand the simulators this one, and the same object to whatever must agree with them
about the time (a connector's `clock`, the Salesforce quota guard, the daemon's schedule), and a
test or benchmark can let minutes settle, sessions end or tokens expire without waiting.
"""

from __future__ import annotations


class FakeClock:
    """Seconds since the epoch, moved only by `advance` or by setting `now`."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
