"""Write-back declarations are checked when the mappings load: a typo fails `check-config` and
`mappings validate` with a did-you-mean, before `plan` ever talks to an API."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from tests.conftest import REPO, write_config

WRITEBACK = """
[writeback.issue_demand]
connector = "{connector}"
target = "{target}"

[writeback.issue_demand.fields]
"Customer ARR" = "{figure}"
"""


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **declared: str) -> Path:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    for name in ("zendesk.toml", "links.toml", "taxonomy.toml"):
        (mappings / name).write_text((REPO / "mappings" / name).read_text())
    (mappings / "overrides").mkdir()
    (mappings / "overrides" / "links.toml").write_text("")
    values = {"connector": "zendesk", "target": "ticket", "figure": "issue_status", **declared}
    (mappings / "writeback.toml").write_text(WRITEBACK.format(**values))
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "token")
    return write_config(tmp_path, zendesk_url="https://acme.zendesk.com", mappings=[str(mappings)])


@pytest.mark.parametrize("command", [["check-config"], ["mappings", "validate"]])
@pytest.mark.parametrize(
    ("declared", "path", "expected"),
    [
        (
            {"figure": "isue_status"},
            'writeback.issue_demand.fields."Customer ARR"',
            "no figure 'isue_status' for ticket targets; did you mean 'issue_status'?",
        ),
        (
            {"target": "tiket"},
            "writeback.issue_demand.target",
            "did you mean 'ticket'?",
        ),
        (
            {"connector": "zendsk"},
            "writeback.issue_demand.connector",
            "no connector instance or type 'zendsk' in the configuration; did you mean 'zendesk'?",
        ),
    ],
)
def test_a_misspelt_writeback_fails_validation_with_a_did_you_mean(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    declared: dict[str, str],
    path: str,
    expected: str,
) -> None:
    config = _config(tmp_path, monkeypatch, **declared)
    result = CliRunner().invoke(cli, ["-c", str(config), *command])
    assert result.exit_code == 1, result.output
    problem = next(line for line in result.output.splitlines() if path in line)
    assert str(tmp_path / "mappings" / "writeback.toml") in problem
    assert expected in problem
    assert "Traceback" not in result.output


def test_a_correct_writeback_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 0, result.output
