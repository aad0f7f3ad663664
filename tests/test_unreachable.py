"""Unreachable hosts fail fast, say why, and cost no budget (issue 12, item 6).

With the example configuration and hosts that do not resolve, `sync --once` took 117 s: every
stream tried five times with growing back-offs, failed connections used up the request budget
(a 46 s silent wait), and every error read `GET incremental/tickets: ConnectionError`. Here one
connector's host does not resolve (`.invalid`) and another's port refuses; attempts are counted
at the transport, not timed. benchmarks/unreachable_hosts.py measures the wall time.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from structlog.testing import capture_logs

from pmsync.app.cli import cli
from pmsync.connectors.budget import BudgetRule, RequestBudget, waiting_with
from pmsync.connectors.http import ConnectorAdapter, add_request_observer
from pmsync.connectors.reach import UNREACHABLE_HOLD_SECONDS, Reachability
from pmsync.errors import Interrupted

REPO = Path(__file__).resolve().parent.parent
STREAMS = 4  # the Zendesk connector's: tickets, users, organizations, jira_links


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def zendesk_block(name: str, base_url: str) -> str:
    return f"""
[connectors.{name}]
type = "zendesk"
base_url = "{base_url}"
incremental_requests_per_minute = 100000
requests_per_minute = 100000
[connectors.{name}.credentials]
email = "pmsync@acme.example"
api_token = {{ env = "PMSYNC_TEST_UNREACHABLE_TOKEN" }}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PMSYNC_TEST_UNREACHABLE_TOKEN", "not-a-real-token")
    path = tmp_path / "pmsync.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        '[sync]\ninitial_backoff = "0.01s"\nmax_backoff = "0.05s"\n'
        "max_attempts_without_progress = 5\n"
        + zendesk_block("nowhere", "https://acme.zendesk.invalid")
        + zendesk_block("refusing", f"http://127.0.0.1:{closed_port()}")
    )
    return path


@pytest.fixture
def attempts() -> Iterator[tuple[Counter[str], dict[str, ConnectorAdapter]]]:
    """Requests that got no answer, per connector (by its adapter), and the adapters."""
    failed: Counter[str] = Counter()
    adapters: dict[str, ConnectorAdapter] = {}

    def observe(
        adapter: ConnectorAdapter, request: requests.PreparedRequest, response: Any
    ) -> None:
        name = "nowhere" if "invalid" in (request.url or "") else "refusing"
        adapters[name] = adapter
        if response is None:
            failed[name] += 1

    remove = add_request_observer(observe)
    yield failed, adapters
    remove()


def test_unreachable_hosts_are_tried_twice_a_cycle_named_and_not_charged(
    config: Path, attempts: tuple[Counter[str], dict[str, ConnectorAdapter]]
) -> None:
    failed, adapters = attempts
    result = CliRunner().invoke(cli, ["-c", str(config), "sync", "--once", "--json"])
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert {(r["connector"], r["status"]) for r in rows} == {
        (name, "failed") for name in ("nowhere", "refusing")
    }
    assert len(rows) == 2 * STREAMS

    # One try and one retry per host for the whole cycle; the other streams send nothing.
    assert failed == {"nowhere": 2, "refusing": 2}
    for row in rows:
        error = row["error"]
        if row["connector"] == "nowhere":
            assert "https://acme.zendesk.invalid/api/" in error
            assert "acme.zendesk.invalid does not resolve" in error
        else:
            assert "http://127.0.0.1:" in error
            assert "connection refused" in error
        assert "ConnectionError" not in error
    # Connections that failed never reached the API: the budget counts none of them.
    for adapter in adapters.values():
        assert adapter.budget is not None
        assert all(usage.used == 0 for usage in adapter.budget.usage())


def test_check_names_the_failure_not_a_python_class(config: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config), "check"])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert "unreachable:" in line
        assert "Error" not in line  # RetriableError, ConnectionError


def test_a_long_budget_wait_is_logged_before_it_starts() -> None:
    budget = RequestBudget([BudgetRule("incremental", "/incremental/", per_minute=1)])
    url = "https://acme.example/api/v2/incremental/tickets/cursor.json?start_time=0"
    budget.acquire("GET", url)

    def stop(_seconds: float) -> None:
        raise Interrupted("stopping")

    with capture_logs() as logs, waiting_with(stop), pytest.raises(Interrupted):
        budget.acquire("GET", url)
    waits = [e for e in logs if e["event"] == "waiting_for_budget"]
    assert len(waits) == 1
    assert waits[0]["rule"] == "incremental"
    assert 55 <= waits[0]["seconds"] <= 61
    assert waits[0]["request"] == "GET https://acme.example/api/v2/incremental/tickets/cursor.json"


def test_a_refund_gives_the_slots_back() -> None:
    budget = RequestBudget([BudgetRule("plan", "/api/", per_minute=2)])
    url = "https://acme.example/api/items"
    taken = budget.acquire("GET", url)
    assert budget.try_acquire("GET", url)
    assert not budget.try_acquire("GET", url)
    budget.refund(taken)
    assert budget.try_acquire("GET", url)
    assert [usage.used for usage in budget.usage()] == [2]


def test_a_host_held_down_is_tried_again_after_the_hold() -> None:
    now = [1000.0]
    reach = Reachability(clock=lambda: now[0])
    url = "https://acme.zendesk.invalid/api/v2/tickets.json"
    assert not reach.failed(url, "does not resolve").again  # the first failure: retriable
    assert reach.failed(url, "does not resolve").again  # the second: no more this cycle
    with pytest.raises(requests.exceptions.ConnectionError, match="unreachable 0 s ago"):
        reach.check(url)
    reach.check("https://other.example/api")  # another host is not affected
    now[0] += UNREACHABLE_HOLD_SECONDS
    reach.check(url)  # a later cycle: tried again
    assert not reach.failed(url, "does not resolve").again
    reach.reached(url)
    assert not reach.failed(url, "connection refused").again  # an answer cleared the count
