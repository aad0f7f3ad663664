"""`pmsync run` started by a person at a terminal says what it runs and where it listens."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from pmsync.simulators.zendesk import ZendeskSimulator, generate
from tests.daemon_helpers import REPO, daemon_env, start_sim, write_daemon_config


def test_run_on_a_terminal_says_where_it_listens(tmp_path: Path) -> None:
    sim = start_sim()
    generate(sim, organizations=2, users=4, tickets=5, seed=3)
    sims: dict[str, ZendeskSimulator] = {"zendesk": sim}
    config = write_daemon_config(
        tmp_path, store_url=f"sqlite:///{tmp_path / 'pmsync.db'}", sims=sims, poll="60s"
    )
    config.write_text(config.read_text().replace('level = "info"', 'level = "warning"'))
    terminal, side = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pmsync.app.cli", "-c", str(config), "run"],
        stdin=subprocess.DEVNULL,
        stdout=side,
        stderr=side,
        env={**daemon_env(sims), "COLUMNS": "100"},
        cwd=REPO,
    )
    os.close(side)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C stops it" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(terminal, 4096)
                except OSError:  # the process ended and closed the terminal
                    break
        text = " ".join(seen.decode(errors="replace").split())
        assert "pmsync runs 1 connector (zendesk), 4 streams" in text, text
        match = re.search(r"health and metrics on http://127\.0\.0\.1:(\d+) ", text)
        assert match, text
        assert int(match.group(1)) > 0
        # It executed itself again on glibc's allocator (same process), whose free pages go
        # back to the system (foundation/gcpolicy.py).
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environ
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        os.close(terminal)
        sim.stop()
