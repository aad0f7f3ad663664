"""A new user's first hour with the demo: 80-column output that cuts no key or number, counts
that agree between the demo, `status` and `links review`, report columns for people, and
"Try next" lines that keep the options the user typed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pmsync.app.cli import cli

pytestmark = pytest.mark.slow  # one demo run (about 8 s) shared by the module

WIDTH = 80


@dataclass
class Demo:
    directory: Path
    output: str

    @property
    def config(self) -> str:
        return str(self.directory / "pmsync.toml")

    def run(self, *args: str, columns: int | None = WIDTH) -> Result:
        env = {"COLUMNS": str(columns) if columns else ""}
        result = CliRunner(env=env).invoke(cli, ["-c", self.config, *args])
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    directory = tmp_path_factory.mktemp("first-hour") / "my demo"
    result = CliRunner(env={"COLUMNS": str(WIDTH)}).invoke(
        cli, ["demo", "--dir", str(directory), "--seed", "7", "--top", "10"]
    )
    assert result.exit_code == 0, result.output
    return Demo(directory, result.stdout)


def fits(output: str, width: int = WIDTH) -> None:
    too_wide = [line for line in output.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in output
    assert "..." not in output


def whole_in(output: str, value: str) -> bool:
    """`value` appears as a whole token (not the start of a longer key or number)."""
    return re.search(rf"(?<![\w,.-]){re.escape(value)}(?![\w,.-])", output) is not None


def table_of(output: str, title: str) -> str:
    start = output.index(title)
    end = output.find("\n\n", start)
    return output[start : end if end >= 0 else len(output)]


def headers(output: str) -> str:
    """The header lines of every table (a header wraps over two lines at most)."""
    lines = output.splitlines()
    rules = [n for n, line in enumerate(lines) if line.startswith("─")]
    return "\n".join(line for n in rules for line in lines[max(0, n - 2) : n])


def test_the_demo_table_fits_80_columns_with_every_key_and_figure_whole(demo: Demo) -> None:
    table = table_of(demo.output, "Top issues by customer ARR")
    fits(table)
    issues = demo.json("report", "--section", "issues", "--top", "10")
    assert isinstance(issues, dict)
    rows = issues["issues"]
    assert len(rows) == 10
    for row in rows:
        assert whole_in(table, row["issue"]), row["issue"]
        assert whole_in(table, f"{row['arr']:,.0f}"), row["arr"]
        assert whole_in(table, str(row["accounts"]))
        assert whole_in(table, str(row["tickets"]))
    assert "ARR (USD)" in table


def test_status_fits_80_columns_with_stream_names_and_counts_whole(demo: Demo) -> None:
    output = demo.run("status").stdout
    fits(output)
    rows = demo.json("status")
    assert isinstance(rows, list)
    for row in rows:
        line = next(line for line in output.splitlines() if line.startswith(row["stream"] + " "))
        assert whole_in(line, f"{row['records']:,}"), line
        assert whole_in(line, f"{row['tombstones']:,}"), line


def test_report_fits_80_columns_and_names_columns_for_people(demo: Demo) -> None:
    output = demo.run("report", "--top", "8").stdout
    fits(output)
    report = demo.json("report", "--top", "8")
    assert isinstance(report, dict)
    for row in report["issues"]:
        assert whole_in(output, row["issue"])
        assert whole_in(output, f"{row['arr']:,.0f}")
    for row in report["areas"]:
        assert whole_in(output, f"{row['arr']:,.0f}")
    for row in report["unlinked"]:
        assert whole_in(output, str(row["ticket"]))
    heads = headers(output)
    for machine in ("top_accounts", "product_area", "arr", "currency", "created_at"):
        assert not re.search(rf"\b{machine}\b", heads), heads
    assert "product area" in heads
    assert "ARR (USD)" in heads


def test_links_review_fits_80_columns(demo: Demo) -> None:
    output = demo.run("links", "review").stdout
    fits(output.rsplit("\n", 2)[0])  # the table; the last line names a file and may wrap
    review = demo.json("links", "review")
    assert isinstance(review, dict)
    for row in review["review"][:20]:
        assert whole_in(output, row["ticket"])
        assert whole_in(output, f"{row['arr_at_stake']:,.0f}")


def test_piped_output_keeps_each_row_on_one_line(demo: Demo) -> None:
    output = demo.run("report", "--section", "unlinked", "--top", "5", columns=None).stdout
    report = demo.json("report", "--section", "unlinked", "--top", "5")
    assert isinstance(report, dict)
    lines = output.splitlines()
    for row in report["unlinked"]:
        [line] = [line for line in lines if line.startswith(f"{row['ticket']} ")]
        assert row["subject"] in line  # not cut, not folded
        assert row["account"] in line


def test_unlinked_tickets_sort_as_numbers(demo: Demo) -> None:
    report = demo.json("report", "--section", "unlinked", "--top", "2000")
    assert isinstance(report, dict)
    rows = report["unlinked"]
    for arr in {row["arr"] for row in rows}:
        same = [int(row["ticket"]) for row in rows if row["arr"] == arr]
        assert same == sorted(same)
    assert any(len(str(row["ticket"])) != len(str(rows[0]["ticket"])) for row in rows)


def test_report_json_is_format_json(demo: Demo) -> None:
    one = demo.run("report", "--json").stdout
    other = demo.run("report", "--format", "json").stdout
    assert json.loads(one) == json.loads(other)
    both = CliRunner().invoke(cli, ["-c", demo.config, "report", "--json", "--format", "csv"])
    assert both.exit_code == 2
    assert "choose one" in both.output


def test_the_demo_counts_agree_with_status_and_links_review(demo: Demo) -> None:
    status = demo.json("status")
    assert isinstance(status, list)
    live = {row["stream"]: row["records"] for row in status}
    deleted = sum(row["tombstones"] for row in status)
    text = " ".join(demo.output.split())
    assert f"{live['salesforce.Account']:,} Salesforce accounts" in text
    assert f"{live['zendesk.tickets']:,} Zendesk tickets" in text
    assert f"{live['jira.issues']:,} Jira issues" in text
    assert f"Synced {sum(live.values()):,} records from {len(live)} streams" in text
    assert f"{deleted:,} deleted at the source" in text
    review = demo.json("links", "review")
    assert isinstance(review, dict)
    assert f"{len(review['review']):,} links await review" in text
    assert f"of {live['zendesk.tickets']:,} tickets to an account" in text


def test_try_next_keeps_the_dir_and_seed_the_user_typed(demo: Demo) -> None:
    assert f"pmsync -c '{demo.directory}/pmsync.toml' report" in demo.output
    assert f"pmsync demo --dir '{demo.directory}' --seed 7 --keep-running" in demo.output
