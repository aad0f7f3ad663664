"""Short commands import only what they use: the start-up cost of `pmsync --help` and
`pmsync status` is mostly imports (benchmarks/startup.py measures it; this checks which)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from pmsync.app.cli.main import COMMAND_MODULES
from pmsync.connectors.registry import Registry, load_registry
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


def test_status_imports_no_connector_http_client_or_logging_library(tmp_path: Path) -> None:
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
    # A current SQLite store is read through sqlite3 alone: SQLAlchemy was most of the cost.
    assert "pmsync.sync.store.rows" in again
    # The few settings status reads are read without pydantic (app.glance)...
    assert "pmsync.app.glance" in again
    for unused in (
        "pydantic",
        "pydantic_core",
        "pmsync.app.config",
        "pmsync.app.runtime",
        "pmsync.connectors.base",
        "pmsync.connectors.zendesk.settings",
        "pmsync.sync.mapping.loader",
        "pmsync.sync.mapping.compiler",
        "pmsync.validation",
        # ...nor are the installed distributions looked at for a type pmsync ships
        "pmsync.connectors.registry",
        "importlib.metadata",
    ):
        assert unused not in again, unused
    for unused in (
        "alembic",
        "sqlalchemy",
        "pmsync.sync.store.store",
        "pmsync.connectors.zendesk.connector",
        "pmsync.connectors.http",
        "pmsync.connectors.salesforce",
        "pmsync.connectors.jira",
        # API clients and HTTP: status reads the store only
        "requests",
        "urllib3",
        "zenpy",
        "simple_salesforce",
        "jira",
        # status logs nothing when all is well: structlog (asyncio, rich tracebacks) stays out
        "structlog",
        # no engine, derivation, write-back, daemon or web view
        "pmsync.sync.engine",
        "pmsync.sync.links.derive",
        "pmsync.sync.links.changes",
        "pmsync.sync.store.locks",
        "pmsync.sync.writeback.plan",
        "pmsync.sync.writeback.apply",
        "pmsync.app.daemon.service",
        "pmsync.app.web.app",
        # nor the link overrides (check-config and sync read them), nor other commands' modules
        "pmsync.sync.links.linker",
        "pmsync.app.cli.demo_command",
        "pmsync.app.cli.report_commands",
        "pmsync.app.cli.writeback_commands",
    ):
        assert unused not in again, unused


def test_status_of_a_configuration_with_every_connector_imports_none_of_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "mappings").mkdir()
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        '[connectors.sf]\ntype = "salesforce"\nmy_domain = "acme.my.salesforce.com"\n'
        '[connectors.sf.credentials]\nmethod = "client_credentials"\nclient_id = "3MVG9"\n'
        'client_secret = { env = "T" }\n'
        '[connectors.jira]\ntype = "jira"\nbase_url = "https://acme.atlassian.net"\n'
        'projects = ["ENG"]\n'
        '[connectors.jira.credentials]\nemail = "ops@example.com"\napi_token = { env = "T" }\n'
    )
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").engine.dispose()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "-c", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "T": "x"},
        check=False,
    )
    assert "configuration problems" not in done.stderr, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1].removeprefix("MODULES ")))
    for unused in (
        "pmsync.connectors.salesforce.settings",
        "pmsync.connectors.jira.settings",
        "pydantic",
        "pmsync.connectors.salesforce.connector",
        "pmsync.connectors.jira.connector",
        "simple_salesforce",
        "jira",
        "requests",
    ):
        assert unused not in loaded, unused


def test_status_of_a_configuration_in_doubt_validates_the_configured_type_only(
    tmp_path: Path,
) -> None:
    """A configuration the glance cannot vouch for (here: a secret that does not resolve) is
    loaded in full, which validates the configured type's settings, not its connector."""
    (tmp_path / "mappings").mkdir()
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        '[connectors.jira]\ntype = "jira"\nbase_url = "https://acme.atlassian.net"\n'
        'projects = ["ENG"]\n'
        '[connectors.jira.credentials]\nemail = "ops@example.com"\n'
        'api_token = { env = "PMSYNC_TEST_UNSET_TOKEN" }\n'
    )
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").engine.dispose()
    loaded = modules_after("-c", str(config), "status")
    assert {"pmsync.app.config", "pmsync.connectors.jira.settings"} <= loaded
    for unused in ("pmsync.connectors.jira.connector", "jira", "requests", "sqlalchemy"):
        assert unused not in loaded, unused


def test_each_settings_entry_point_is_its_connectors_settings_model() -> None:
    """`status` validates with the settings entry point; every other command with the class's
    model: they must be the same class."""
    registry = Registry()
    fresh = load_registry.__wrapped__()
    assert set(fresh.settings_entry_points) == {"zendesk", "pendo", "rest", "jira", "salesforce"}
    for name, entry in fresh.settings_entry_points.items():
        registry.pending[name] = fresh.pending[name]
        assert entry.load() is registry.types[name].settings_model, name


def test_a_logger_used_before_structlog_is_loaded_writes_as_configured() -> None:
    """configure_logging before structlog is loaded: the first line still comes out as JSON
    on the configured stream, with secrets masked, and nothing goes to stdout."""
    probe = (
        "import io, json, sys\n"
        "from pmsync.logs import configure_logging, get_logger\n"
        "from pmsync.redact import register_secret\n"
        "out = io.StringIO()\n"
        "configure_logging('info', 'json', stream=out)\n"
        "assert 'structlog' not in sys.modules\n"
        "register_secret('hunter2-secret')\n"
        "get_logger('pmsync.test').warning('hello', token='hunter2-secret')\n"
        "import logging; logging.getLogger('urllib3').warning('library says %s', 'hi')\n"
        "sys.stderr.write(out.getvalue())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == ""
    first, second = (json.loads(line) for line in done.stderr.splitlines())
    assert first["event"] == "hello"
    assert first["level"] == "warning"
    assert first["logger"] == "pmsync.test"
    assert "hunter2-secret" not in done.stderr
    assert second["event"] == "library says hi"


def test_a_plugin_logging_with_structlog_directly_gets_pmsync_s_stream_and_redaction() -> None:
    """A connector plugin may call structlog.get_logger itself: once a connector is loaded,
    its lines are JSON on the configured stream with secrets masked, never on stdout."""
    probe = (
        "import io, sys\n"
        "from pmsync.logs import configure_logging\n"
        "from pmsync.redact import register_secret\n"
        "from pmsync.connectors.registry import load_registry\n"
        "out = io.StringIO()\n"
        "configure_logging('info', 'json', stream=out)\n"
        "register_secret('hunter2-secret')\n"
        "assert load_registry().get('zendesk') is not None\n"
        "import structlog\n"
        "structlog.get_logger('plugin').warning('request', authorization='Bearer hunter2-secret')\n"
        "sys.stderr.write(out.getvalue())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == ""
    (line,) = (json.loads(text) for text in done.stderr.splitlines() if '"request"' in text)
    assert line["logger"] == "plugin"
    assert "hunter2-secret" not in done.stderr


def test_the_command_table_names_every_command_in_its_module() -> None:
    """main.COMMAND_MODULES says which module to import for a command: it must list each
    module's COMMANDS, and nothing else."""
    table: dict[str, str] = {}
    for module in set(COMMAND_MODULES.values()):
        for command in importlib.import_module(f"pmsync.app.cli.{module}").COMMANDS:
            assert command.name is not None
            table[command.name] = module
    assert table == COMMAND_MODULES
