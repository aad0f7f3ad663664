"""`pmsync status` reads its few settings without pydantic (`app.glance`) when nothing in them is
in doubt, and loads the configuration in full otherwise: a glance must read what the full load
reads, and every problem must still come from the full load, naming the file and field."""

from __future__ import annotations

import json
import typing
from importlib.metadata import distribution
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.config import LogSettings, Settings
from pmsync.app.glance import (
    BUILTIN_TYPES,
    LOG_FORMATS,
    LOG_LEVELS,
    SECTIONS,
    glance,
)
from pmsync.app.runtime import Runtime
from pmsync.sync.store.store import Store
from tests.conftest import REPO, write_config
from tests.test_status_reads import config_with_users, fill

TOKEN = "PMSYNC_TEST_ZENDESK_TOKEN"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN, "a-token-for-tests")


def test_the_glance_knows_the_sections_choices_and_types_the_models_know() -> None:
    assert set(Settings.model_fields) == SECTIONS
    for name, choices in (("level", LOG_LEVELS), ("format", LOG_FORMATS)):
        field = LogSettings.model_fields[name]
        assert set(typing.get_args(field.annotation)) == set(choices), name
        assert field.default == choices[0], name
    declared = distribution("pmsync").entry_points.select(group="pmsync.connectors")
    assert {ep.name for ep in declared} == BUILTIN_TYPES


OTHERS = """
[connectors.support]
type = "zendesk"
base_url = "https://support.zendesk.com"
{support}
[connectors.support.credentials]
email = "ops@example.com"
api_token = {{ env = "PMSYNC_TEST_ZENDESK_TOKEN" }}
[connectors.jira]
type = "jira"
base_url = "https://acme.atlassian.net"
projects = ["ENG"]
{jira}
[connectors.jira.credentials]
email = "ops@example.com"
api_token = {{ env = "PMSYNC_TEST_ZENDESK_TOKEN" }}
"""

# An instance's own mapping of a stream its type's file maps too, and a stream of its own.
OWN_MAPPING = """connector = "support"
[streams.brands]
entity = "account"
fields = { id = "id" }
[streams.users]
entity = "person"
fields = { id = "id", email = "email" }
[streams.groups]
entity = "person"
enabled = false
fields = { id = "id" }
"""


@pytest.mark.parametrize(
    ("zendesk", "support", "jira", "log"),
    [
        ("", "", "", ""),
        (
            'streams = ["users", "tickets", "users"]',
            'streams = ["brands", "users"]',
            'enabled = false\nstreams = ["issues"]',
            "",
        ),
        ("enabled = false", "enabled = true", "", '[log]\nlevel = "debug"\nformat = "json"'),
    ],
)
def test_a_glance_reads_what_the_full_load_reads(
    tmp_path: Path, zendesk: str, support: str, jira: str, log: str
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "zendesk.toml").write_text(OWN_MAPPING)
    config = write_config(
        tmp_path,
        zendesk_url="https://acme.zendesk.com",
        store_url="sqlite:///relative/pmsync.db",
        mappings=[str(REPO / "mappings"), "own"],
        zendesk_settings=zendesk,
        extra=OTHERS.format(support=support, jira=jira) + log,
    )
    seen = glance(config)
    assert seen is not None
    runtime = Runtime.load(str(config), create_store=False, full_check=False)
    assert seen.slots == runtime.slots()
    assert ("support", "brands") in seen.slots
    assert seen.store_url == runtime.config.store_url()
    assert seen.store_url.endswith(f"{tmp_path}/relative/pmsync.db")
    assert seen.path == runtime.config.path
    settings = runtime.config.settings
    assert (seen.log_level, seen.log_format) == (settings.log.level, settings.log.format)
    assert seen.store_url_written


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (lambda t: t + "[deamon]\nx = 1\n", "deamon", "did you mean 'daemon'"),
        (lambda t: t + '[log]\nlevel = "loud"\n', "log.level", "must be one of"),
        (lambda t: t.replace('"zendesk"', '"zendsk"'), "connectors.zendesk.type", "zendesk"),
        (
            lambda t: t.replace('type = "zendesk"', 'type = "zendesk"\nstreams = ["tikets"]'),
            "connectors.zendesk.streams",
            "did you mean 'tickets'",
        ),
        (
            lambda t: t.replace(TOKEN, "PMSYNC_TEST_UNSET"),
            "connectors.zendesk.credentials.api_token",
            "PMSYNC_TEST_UNSET is not set",
        ),
        (
            lambda t: t.replace('paths = ["', 'paths = ["nowhere", "'),
            "mappings.paths",
            "'nowhere' does not exist",
        ),
        (lambda t: t.replace("sqlite:///", "mysql:///"), "store.url", "not 'mysql'"),
        (lambda t: t + '[connectors."bad!"]\ntype = "zendesk"\n', "connectors.bad!", "letters"),
    ],
)
def test_a_problem_is_named_by_the_full_load(
    tmp_path: Path, change: typing.Callable[[str], str], field: str, says: str
) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com")
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").close()
    config.write_text(change(config.read_text()))
    assert glance(config) is None
    result = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert result.exit_code == 1, result.output
    assert "configuration problems" in result.stderr
    line = next(ln for ln in result.stderr.splitlines() if f"{config}: {field}" in ln)
    assert says in line, result.stderr


def test_a_mapping_file_in_doubt_is_named_by_the_full_load(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "x.toml").write_text('[streams.tickets]\nentity = "feedback"\n')
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", mappings=["maps"])
    Store(f"sqlite:///{tmp_path / 'pmsync.db'}").close()
    assert glance(config) is None
    result = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'maps' / 'x.toml'}: connector: required" in result.stderr


def test_a_missing_store_is_reported_as_before(tmp_path: Path) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com")
    assert glance(config) is not None
    result = CliRunner().invoke(cli, ["-c", str(config), "status"])
    assert result.exit_code == 1
    assert f"no store at {tmp_path / 'pmsync.db'} (store.url in {config})" in result.stderr
    assert not (tmp_path / "pmsync.db").exists()


def test_status_shows_the_same_whether_glanced_or_loaded_in_full(
    tmp_path: Path, store_url: str
) -> None:
    """`enabled = "true"` is a bool to pydantic, not to a glance: the same configuration, read
    both ways, over the same store."""
    store = Store(store_url)
    fill(store)
    store.close()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    glanced = config_with_users(tmp_path / "a", store_url)
    loaded = config_with_users(tmp_path / "b", store_url)
    loaded.write_text(
        loaded.read_text().replace(
            "[connectors.zendesk]\n", '[connectors.zendesk]\nenabled = "true"\n'
        )
    )
    assert glance(glanced) is not None
    assert glance(loaded) is None
    shown = []
    for config in (glanced, loaded):
        table = CliRunner().invoke(cli, ["-c", str(config), "status"], terminal_width=200)
        rows = CliRunner().invoke(cli, ["-c", str(config), "status", "--json"])
        assert table.exit_code == rows.exit_code == 0, table.output + rows.output
        shown.append((table.stdout, json.loads(rows.stdout)))
    assert shown[0] == shown[1]
    assert "zendesk.users" in shown[0][0]
