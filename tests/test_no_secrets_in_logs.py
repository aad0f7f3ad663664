"""A canary secret never appears in any log line, error or output, in any encoding."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmsync.simulators.zendesk import ZendeskSimulator, generate
from tests.conftest import write_config

CANARY = "canary-Zk9q-SECRET-7731"
WRONG = "canary-WRONG-token-5512"


def encodings(secret: str, email: str) -> list[str]:
    pair = f"{email}/token:{secret}"
    return [
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(pair.encode()).decode(),
    ]


@pytest.mark.slow
def test_canary_secret_never_reaches_logs(tmp_path: Path) -> None:
    sim = ZendeskSimulator(token=CANARY, incremental_per_minute=None, plan_per_minute=None)
    sim.start()
    try:
        generate(sim, organizations=5, users=30, tickets=120, seed=1)
        sim.inject(
            429, path_prefix="/api/v2/incremental/tickets", times=1, headers={"Retry-After": "1"}
        )
        sim.inject(503, path_prefix="/api/v2/incremental/users", times=1)
        config = write_config(tmp_path, zendesk_url=sim.base_url, page_size=50)
        base = [
            sys.executable,
            "-m",
            "pmsync.app.cli",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "-c",
            str(config),
        ]
        captured: list[str] = []
        for token in (CANARY, WRONG):
            env = {**os.environ, "PMSYNC_TEST_ZENDESK_TOKEN": token}
            for args in (
                ["sync", "--once"],
                ["check"],
                ["status"],
                ["discover", "zendesk", "tickets"],
            ):
                result = subprocess.run(
                    [*base, *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                captured.append(result.stdout)
                captured.append(result.stderr)
        text = "\n".join(captured)
        assert text.count('"level": "debug"') > 5  # debug logging really was on
        assert "401" in text  # the refused token produced errors that were logged
        for secret in (*encodings(CANARY, sim.email), *encodings(WRONG, sim.email)):
            assert secret not in text, f"secret leaked in an encoding: {secret[:6]}..."
        # and the simulator did see the real credential, so it was in play
        auths = {r.headers.get("authorization", "") for r in sim.requests}
        expected = "Basic " + encodings(CANARY, sim.email)[2]
        assert expected in auths
    finally:
        sim.stop()
