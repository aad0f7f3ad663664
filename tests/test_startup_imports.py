"""Short commands import only what they use: the start-up cost of `pmsync --help` and
`pmsync status` is mostly imports (benchmarks/startup.py measures it; this checks which)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys, json
from pmsync.app.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="pmsync")
except SystemExit:
    pass
print("MODULES " + json.dumps(sorted(sys.modules)))
"""


def modules_after(*args: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("MODULES ")][-1]
    return set(json.loads(line.removeprefix("MODULES ")))


def test_help_imports_no_logging_library_store_or_connector() -> None:
    loaded = modules_after("--help")
    for heavy in ("structlog", "pydantic", "sqlalchemy", "alembic", "pmsync.connectors.base"):
        assert heavy not in loaded, heavy


def test_status_imports_only_the_configured_connector_and_no_alembic(tmp_path: Path) -> None:
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        '[connectors.zendesk]\ntype = "zendesk"\nbase_url = "http://127.0.0.1:9"\n'
        'streams = ["tickets"]\n'
        '[connectors.zendesk.credentials]\nemail = "ops@example.com"\n'
        'api_token = { env = "STARTUP_TEST_TOKEN" }\n'
    )
    env = {"STARTUP_TEST_TOKEN": "x"}
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").engine.dispose()  # as `pmsync sync` makes it
    again = modules_after("-c", str(config), "status", env=env)
    assert "pmsync.connectors.zendesk.connector" in again
    for unused in ("alembic", "pmsync.connectors.salesforce", "pmsync.connectors.jira"):
        assert unused not in again, unused
    # status reads config and the store: no engine, derivation, write-back or API client
    for unused in (
        "pmsync.sync.engine",
        "pmsync.sync.links.derive",
        "pmsync.sync.links.changes",
        "pmsync.sync.store.locks",
        "pmsync.sync.writeback.plan",
        "pmsync.sync.writeback.apply",
        "zenpy",
    ):
        assert unused not in again, unused
