"""Broken files and broken mappings: one line per problem, failed streams called failed.

Issue 12, items 1 and 2. (The fuzzing over many broken files is tests/test_fuzz_files.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import REPO, write_config


def shipped_mappings(tmp_path: Path) -> Path:
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", mappings, ignore=shutil.ignore_patterns("examples"))
    return mappings


def problem_lines(output: str) -> list[str]:
    lines = output.strip().splitlines()
    assert lines[0].startswith("configuration problems ("), output
    assert lines[0] == f"configuration problems ({len(lines) - 1}):", output
    return [line.strip() for line in lines[1:]]


# ---- item 1: tracebacks on broken files ---------------------------------------------------


@pytest.mark.parametrize("section", ["rollup", "streams", "score", "taxonomy", "writeback"])
def test_a_section_that_is_not_a_table_is_one_problem(
    tmp_path: Path, zendesk_token_env: None, section: str
) -> None:
    mappings = shipped_mappings(tmp_path)
    extra = mappings / "extra.toml"
    extra.write_text(f"{section} = 5\ncolour = 1\n")
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)]
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "mappings", "validate"])
    assert result.exit_code == 1, result.output
    assert problem_lines(result.output) == [
        f"{extra}: {section}: must be a table",
        f"{extra}: colour: unknown field 'colour' (known: connector, description, links, "
        "rollup, score, streams, taxonomy, writeback)",
    ]


def test_an_unknown_key_does_not_hide_the_connector(
    tmp_path: Path, zendesk_token_env: None
) -> None:
    mappings = shipped_mappings(tmp_path)
    jira = mappings / "zendesk.toml"
    jira.write_text("colour = 1\n" + jira.read_text())
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)]
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1
    assert problem_lines(result.output) == [
        f"{jira}: colour: unknown field 'colour' (known: connector, description, links, "
        "rollup, score, streams, taxonomy, writeback)"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e400", "poll_interval: is not a duration pmsync can wait: at most 100 years"),
        ("99999999999999999999", "poll_interval: is not a duration pmsync can wait"),
        ('"99999999999d"', "poll_interval: is not a duration pmsync can wait"),
        ("nan", "poll_interval: is not a duration pmsync can wait"),
    ],
)
def test_a_duration_past_any_clock_is_a_problem(
    tmp_path: Path, zendesk_token_env: None, value: str, expected: str
) -> None:
    config = write_config(tmp_path, zendesk_url="https://acme.zendesk.com")
    config.write_text(
        config.read_text().replace('type = "zendesk"', f'type = "zendesk"\npoll_interval = {value}')
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1, result.output
    assert problem_lines(result.output) == [f"{config}: connectors.zendesk.{expected}"] or [
        line for line in problem_lines(result.output) if expected in line
    ]


def test_a_connector_that_is_not_a_table_is_one_problem(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="[connectors]\nzendesk = [0]\njira = 2024-01-01\n")
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1, result.output
    assert problem_lines(result.output) == [
        f"{config}: connectors.zendesk: Input should be a valid dictionary",
        f"{config}: connectors.jira: Input should be a valid dictionary",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "bad.toml: invalid TOML: nested too deeply"),
        (b'a = "caf\xe9"\n', "bad.toml: is not UTF-8 text (line 1, column 9: byte 0xe9)"),
    ],
)
def test_a_file_no_parser_survives_is_one_line_from_the_real_command(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "bad.toml").write_bytes(data)
    config = write_config(tmp_path, mappings=[str(mappings)])
    for command in (["check-config"], ["mappings", "validate"]):
        result = subprocess.run(
            [sys.executable, "-m", "pmsync.app.cli", "-c", str(config), *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert problem_lines(result.stderr) == [
            f"{mappings / 'bad.toml'}: {expected.split(': ', 1)[1]}"
        ]


# ---- item 2: JMESPath functions, streams that dead-letter everything ----------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("subject | foo(@)", "unknown function foo(); did you mean 'floor'?"),
        ("lenght(tags)", "unknown function lenght(); did you mean 'length'?"),
        ("length(tags, subject)", "length() takes 1 argument, not 2"),
        ("not_null()", "not_null() takes at least 1 argument, not 0"),
        ("(" * 2000 + "subject" + ")" * 2000, "nested too deeply"),
    ],
)
def test_a_path_calling_an_unknown_function_fails_validation(
    tmp_path: Path, zendesk_token_env: None, path: str, reason: str
) -> None:
    mappings = shipped_mappings(tmp_path)
    zendesk = mappings / "zendesk.toml"
    zendesk.write_text(
        zendesk.read_text().replace('subject = "subject"', f"subject = {json.dumps(path)}")
    )
    config = write_config(
        tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)]
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "mappings", "validate"])
    assert result.exit_code == 1, result.output
    [line] = problem_lines(result.output)
    assert line.startswith(f"{zendesk}: streams.tickets.fields.subject: '")
    assert line.endswith(f"' is not a valid JMESPath expression ({reason})")


def test_a_rest_endpoint_path_calling_an_unknown_function_fails_validation(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        mappings=[],
        extra=(
            '[connectors.api]\ntype = "rest"\nbase_url = "https://api.example.com"\n'
            '[connectors.api.endpoints.things]\npath = "/things"\nkey = "id"\n'
            'records_path = "sort_by(items, &id) | frist(@)"\n'
        ),
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1, result.output
    assert "unknown function frist()" in result.output


def test_a_stream_whose_every_record_dead_letters_failed_and_the_summary_says_so(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    mappings = shipped_mappings(tmp_path)
    zendesk = mappings / "zendesk.toml"
    # Compiles (abs is a function), but a ticket's subject is text: every ticket fails.
    zendesk.write_text(
        zendesk.read_text().replace('subject = "subject"', 'subject = "abs(subject)"')
    )
    config = str(
        write_config(
            tmp_path, zendesk_url=small_zendesk.base_url, page_size=100, mappings=[str(mappings)]
        )
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["-c", config, "mappings", "validate"]).exit_code == 0
    preview = runner.invoke(
        cli, ["-c", config, "mappings", "preview", "zendesk.tickets", "-n", "1"]
    )
    assert preview.exit_code == 0, preview.output
    assert "cannot be read: In function abs(), invalid type for value" in preview.stdout
    assert "would go to dead letters: field 'subject'" in preview.stdout

    result = runner.invoke(cli, ["-c", config, "sync", "--once", "--stream", "zendesk.tickets"])
    assert result.exit_code == 1, result.output
    [row] = [line for line in result.stdout.splitlines() if line.startswith("zendesk.tickets ")]
    assert row.split()[1] == "failed"
    assert "zendesk.tickets: every record read (" in result.stdout
    assert "went to dead letters; the first: field 'subject': In function abs()" in result.stdout
    assert "could not be mapped and went to dead letters (zendesk.tickets " in result.stdout
    assert "`pmsync dead-letters` shows each field and reason" in result.stdout

    status = json.loads(runner.invoke(cli, ["-c", config, "status", "--json"]).stdout)
    tickets = next(row for row in status if row["stream"] == "zendesk.tickets")
    assert tickets["status"] == "failed"
    assert tickets["last_success_at"] is None
    assert tickets["dead_letters"] > 0
    assert "every record read" in tickets["last_error"]


@pytest.mark.slow
def test_the_demo_names_failed_streams_and_dead_letters(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    (directory / "mappings").mkdir(parents=True)
    zendesk = (REPO / "mappings" / "zendesk.toml").read_text()
    (directory / "mappings" / "zendesk.toml").write_text(
        zendesk.replace('subject = "subject"', 'subject = "abs(subject)"')
    )
    result = CliRunner().invoke(cli, ["demo", "--dir", str(directory), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "zendesk.tickets failed: every record read (" in result.stdout
    assert "could not be mapped and went to dead letters (zendesk.tickets " in result.stdout
    assert f"`pmsync -c {directory / 'pmsync.toml'} dead-letters`" in result.stdout


@pytest.fixture
def zendesk_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "a-token-for-tests")
