"""The CLI at the boundary: help everywhere, one-screen errors, exit codes, plugins, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pmsync.app.cli.main import load_all_commands
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import REPO, write_config

cli = load_all_commands()  # every command registered, for walking `cli.commands`


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(all_commands(command, path))
    return found


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pmsync.app.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_every_command_has_help_text() -> None:
    runner = CliRunner()
    commands = all_commands(cli)
    assert len(commands) >= 10
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        command: click.Command = cli
        for part in path:
            assert isinstance(command, click.Group)
            command = command.commands[part]
        assert command.help, f"{' '.join(path)} has no help"
        assert len(command.help.strip()) > 10, f"{' '.join(path)} has too little help"


def test_broken_config_is_one_screen_names_file_and_path_exit_1(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", token_env="PMSYNC_TEST_SURELY_UNSET"
    )
    config.write_text(config.read_text().replace("page_size", "page_sise"))
    result = run("-c", str(config), "check-config")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 2 <= len(lines) <= 20
    assert (
        f"{config}: connectors.zendesk.page_sise: unknown field 'page_sise'; did you mean "
        "'page_size'?" in result.stderr
    )
    assert (
        "connectors.zendesk.credentials.api_token: environment variable "
        "PMSYNC_TEST_SURELY_UNSET is not set" in result.stderr
    )


def test_bad_toml_and_broken_mapping_exit_1_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[store\n")
    result = run("-c", str(bad), "sync", "--once")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "bad.toml: invalid TOML" in result.stderr

    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "zendesk.toml").write_text(
        'connector = "zendesk"\n[streams.tickets]\nentity = "feedback"\n'
        '[streams.tickets.fields]\nsubjet = "subject"\n'
    )
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)]
    )
    result = run(
        "-c", str(config), "mappings", "validate", env={"PMSYNC_TEST_ZENDESK_TOKEN": "x" * 10}
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "zendesk.toml: streams.tickets.fields.subjet: entity 'feedback' has no field "
        "'subjet'; did you mean 'subject'?" in result.stderr
    )


def test_mapping_for_a_stream_the_connector_lacks(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "zendesk.toml").write_text(
        'connector = "zendesk"\n[streams.tikets]\nentity = "feedback"\n'
    )
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)]
    )
    result = run("-c", str(config), "check-config", env={"PMSYNC_TEST_ZENDESK_TOKEN": "x" * 10})
    assert result.returncode == 1
    assert (
        "streams.tikets: connector 'zendesk' has no stream 'tikets'; did you mean "
        "'tickets'?" in result.stderr
    )


def test_broken_plugin_is_reported_and_others_still_load(tmp_path: Path) -> None:
    dist = tmp_path / "pmsync_broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pmsync-broken-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[pmsync.connectors]\nbroken = no_such_module_anywhere:Connector\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    result = run("connectors", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["type"]: row for row in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "broken"
    assert "ModuleNotFoundError" in rows["broken"]["description"]
    assert rows["zendesk"]["status"] == "ok"


def test_sync_status_check_discover_and_preview_from_the_command_line(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    config = str(write_config(tmp_path, zendesk_url=small_zendesk.base_url, page_size=100))
    runner = CliRunner()
    result = runner.invoke(cli, ["-c", config, "sync", "--once", "--json"])
    assert result.exit_code == 0, result.output
    results = {r["stream"]: r for r in json.loads(result.stdout)}
    assert results["tickets"]["status"] == "ok"
    assert results["tickets"]["inserted"] + results["tickets"]["deleted"] == 300

    status = json.loads(runner.invoke(cli, ["-c", config, "status", "--json"]).stdout)
    tickets = next(row for row in status if row["stream"] == "zendesk.tickets")
    assert tickets["status"] == "ok"
    assert tickets["records"] + tickets["tombstones"] == 300
    assert tickets["last_success_at"] is not None

    assert runner.invoke(cli, ["-c", config, "check"]).exit_code == 0
    fields = json.loads(
        runner.invoke(cli, ["-c", config, "discover", "zendesk", "tickets", "--json"]).stdout
    )
    assert any(f["custom"] and f["label"] == "Jira issue key" for f in fields)

    before = len(small_zendesk.requests)
    preview = json.loads(
        runner.invoke(
            cli, ["-c", config, "mappings", "preview", "zendesk.tickets", "-n", "2", "--json"]
        ).stdout
    )
    assert len(preview) == 2
    assert {f["field"] for f in preview[0]["fields"]} >= {"subject", "product_area"}
    assert len(small_zendesk.requests) == before + 1  # one page fetched, nothing written
    status_after = json.loads(runner.invoke(cli, ["-c", config, "status", "--json"]).stdout)
    assert status_after == status


def test_check_fails_with_exit_1_on_a_refused_credential(
    tmp_path: Path, small_zendesk: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "refused-token-123")
    config = str(write_config(tmp_path, zendesk_url=small_zendesk.base_url))
    result = CliRunner().invoke(cli, ["-c", config, "check"])
    assert result.exit_code == 1
    assert "FAIL zendesk" in result.stdout
    assert "credentials" in result.stdout
    assert "refused-token-123" not in result.stdout


def test_broken_overrides_file_and_note_template_are_configuration_problems(
    tmp_path: Path,
) -> None:
    mappings = tmp_path / "mappings"
    (mappings / "overrides").mkdir(parents=True)
    (mappings / "links.toml").write_text('[links]\noverrides = "overrides/links.toml"\n')
    (mappings / "overrides" / "links.toml").write_text(
        '[ticket_account]\n"12" = ["not", "an", "account"]\n[ticket_issu]\n"1" = "APP-1"\n'
    )
    config = write_config(
        tmp_path,
        mappings=[str(mappings)],
        extra='[close_loop]\nenabled = true\nnote = "Shipped {ky} {"\n',
    )
    result = run("-c", str(config), "check-config")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert 'links.toml: ticket_account."12": must be an account id or name' in result.stderr
    assert "links.toml: ticket_issu: unknown section" in result.stderr
    assert "close_loop.note" in result.stderr
    (mappings / "overrides" / "links.toml").write_text("[ticket_account\n")
    result = run("-c", str(config), "links", "review")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "links.toml: invalid TOML" in result.stderr


def test_note_template_placeholders_are_checked(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, mappings=[], extra='[close_loop]\nenabled = true\nnote = "{key} is {stauts}"\n'
    )
    result = run("-c", str(config), "check-config")
    assert result.returncode == 1
    assert "unknown placeholder {stauts}; did you mean 'status'?" in result.stderr


def test_connector_names_cannot_hold_a_dot(tmp_path: Path) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[])
    config.write_text(
        config.read_text()
        .replace("[connectors.zendesk", '[connectors."eu.zendesk"')
        .replace('[connectors."eu.zendesk".credentials]', '[connectors."eu.zendesk".credentials]')
    )
    result = run("-c", str(config), "check-config", env={"PMSYNC_TEST_ZENDESK_TOKEN": "x" * 10})
    assert result.returncode == 1
    assert "connectors.eu.zendesk: a connector name uses letters, digits" in result.stderr
