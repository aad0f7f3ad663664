"""Errors a new user meets in the first hour say what exists, where, and what to write."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pmsync.app.cli import cli
from pmsync.app.daemon.leases import SingleProcessLease
from tests.conftest import REPO, write_config

TOKEN = "PMSYNC_TEST_ERRORS_TOKEN"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN, "a-token")
    return write_config(tmp_path, zendesk_url="https://acme.zendesk.com", token_env=TOKEN)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_an_unknown_connector_lists_the_configured_ones(config: Path) -> None:
    result = invoke("-c", str(config), "discover", "nosuch")
    assert result.exit_code == 2
    assert "CONNECTOR: no connector 'nosuch'" in result.output
    assert "(connectors: zendesk)" in result.output
    assert "configuration problems" not in result.output
    check = invoke("-c", str(config), "check", "zendsk")
    assert "did you mean 'zendesk'?" in check.output


def test_an_unknown_stream_names_the_argument_the_user_typed(config: Path) -> None:
    preview = invoke("-c", str(config), "mappings", "preview", "nosuch")
    assert preview.exit_code == 2
    assert "STREAM: no stream 'nosuch'" in preview.output
    assert "--stream" not in preview.output
    assert "zendesk.tickets" in preview.output
    sync = invoke("-c", str(config), "sync", "--once", "--stream", "tikets")
    assert sync.exit_code == 2
    assert "--stream: no stream 'tikets'; did you mean" in sync.output


def test_a_held_store_is_not_called_a_configuration_problem(config: Path) -> None:
    daemon = SingleProcessLease(config.parent / "pmsync.db", "daemon")
    try:
        result = invoke("-c", str(config), "sync", "--once")
    finally:
        daemon.close()
    assert result.exit_code == 1
    assert result.stderr.startswith("error: another pmsync process")
    assert "configuration problems" not in result.stderr


def test_a_missing_mappings_folder_names_the_setting_and_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, mappings=["my-mappings"])
    result = invoke("-c", str(config), "check-config")
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "my-mappings" in line]
    assert f"{config}: mappings.paths: 'my-mappings' does not exist" in line
    assert str(tmp_path / "my-mappings") in line
    (tmp_path / "pmsync.toml").write_text("")  # no [mappings] at all: the default is named
    default = invoke("-c", str(tmp_path / "pmsync.toml"), "check-config")
    assert "mappings.paths: 'mappings' (the default) does not exist" in default.stderr


def test_a_path_that_does_not_parse_is_explained_once(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    text = (REPO / "mappings" / "zendesk.toml").read_text()
    (mappings / "zendesk.toml").write_text(
        text.replace('subject = "subject"', 'subject = "subject[["', 1)
    )
    config = write_config(tmp_path, mappings=[str(mappings)])
    result = invoke("-c", str(config), "check-config")
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "subject[[" in line]
    assert line.count("subject[[") == 1
    assert "column 9" in line
    assert "^" not in result.stderr


def test_global_options_are_accepted_after_the_command(config: Path) -> None:
    for args in (
        ["check-config", "--config", str(config)],
        ["check-config", "-c", str(config)],
        ["check-config", f"--config={config}", "--log-level", "error"],
        ["check-config", f"-c{config}"],
    ):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout.startswith(f"ok: {config}")


def test_no_configuration_names_every_place_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PMSYNC_CONFIG", raising=False)
    result = invoke("check-config")
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert str(tmp_path / "pmsync.toml") in text
    assert "/etc/pmsync/pmsync.toml" in text
    assert "-c FILE" in text
    assert "$PMSYNC_CONFIG" in text


def test_a_systemd_credential_outside_systemd_suggests_env_or_file(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config.write_text(config.read_text().replace(f'{{ env = "{TOKEN}" }}', '{ credential = "zd" }'))
    result = invoke("-c", str(config), "check-config")
    assert result.exit_code == 1
    assert "$CREDENTIALS_DIRECTORY" in result.stderr
    assert 'write { env = "VAR" } or { file = "/path" } instead' in " ".join(result.stderr.split())


def test_a_zendesk_subdomain_gets_the_base_url_to_write(config: Path) -> None:
    config.write_text(
        config.read_text().replace('base_url = "https://acme.zendesk.com"', 'subdomain = "acme"')
    )
    result = invoke("-c", str(config), "check-config")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if "connectors.zendesk" in line]
    assert len(problems) == 1, result.stderr
    assert 'write base_url = "https://acme.zendesk.com" instead' in problems[0]


def test_help_names_pmsync_config_and_cuts_no_description() -> None:
    result = invoke("--help")
    assert "PMSYNC_CONFIG" in result.output
    commands = result.output.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "Perform the write-back plan (exactly what `pmsync plan`" in " ".join(
        result.output.split()
    )
    for group in ("mappings", "links", "connectors"):
        assert "..." not in invoke(group, "--help").output.split("Commands:", 1)[1]


def test_options_after_a_double_dash_stay_where_they_are() -> None:
    from pmsync.app.cli.main import hoist_global_options

    assert hoist_global_options(["-c", "a.toml", "status", "--log-level", "info"]) == [
        "-c",
        "a.toml",
        "--log-level",
        "info",
        "status",
    ]
    assert hoist_global_options(["state", "set", "x", "--", "-c"]) == [
        "state",
        "set",
        "x",
        "--",
        "-c",
    ]
