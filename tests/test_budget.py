"""Request budgets: one per connector, shared by reads and writes, with reserves."""

from __future__ import annotations

import time

import pytest

from pmsync.connectors.budget import BudgetRule, RequestBudget, kind_of, request_kind, waiting_with
from pmsync.connectors.http import make_session, retry_after_seconds
from pmsync.errors import Interrupted
from pmsync.simulators.zendesk import ZendeskSimulator

URL = "https://acme.example/api/items"


def test_reads_cannot_take_the_slots_reserved_for_writes() -> None:
    budget = RequestBudget([BudgetRule("plan", "/api/", per_minute=5, reserved_for_writes=2)])
    assert [budget.try_acquire("GET", URL) for _ in range(4)] == [True, True, True, False]
    assert budget.try_acquire("PUT", URL)
    assert budget.try_acquire("PUT", URL)
    assert not budget.try_acquire("PUT", URL)


def test_writes_cannot_starve_reads_either() -> None:
    budget = RequestBudget([BudgetRule("plan", "/api/", per_minute=4, reserved_for_reads=1)])
    assert [budget.try_acquire("POST", URL) for _ in range(4)] == [True, True, True, False]
    assert budget.try_acquire("GET", URL)


def test_a_post_that_reads_can_be_counted_as_a_read() -> None:
    assert kind_of("POST") == "write"
    with request_kind("read"):
        assert kind_of("POST") == "read"
    assert kind_of("GET") == "read"


def test_rules_only_apply_to_matching_urls_and_methods() -> None:
    budget = RequestBudget(
        [BudgetRule("writes", "/api/", per_minute=1, methods=frozenset({"PUT"}))]
    )
    assert budget.try_acquire("PUT", URL)
    assert not budget.try_acquire("PUT", URL)
    assert budget.try_acquire("GET", URL)
    assert budget.try_acquire("PUT", "https://acme.example/other")


def test_usage_reports_each_rule_and_reported_quotas() -> None:
    budget = RequestBudget(
        [
            BudgetRule("plan", "/api/", per_minute=10),
            BudgetRule("daily", "/api/", per_day=1000),
        ]
    )
    for _ in range(3):
        budget.acquire("GET", URL)
    budget.report_quota("api_daily", used=500, limit=15000, window_seconds=86400)
    usage = {u.rule: (u.used, u.limit, u.window_seconds) for u in budget.usage()}
    assert usage == {
        "plan": (3, 10, 60.0),
        "daily": (3, 1000, 86400.0),
        "api_daily": (500, 15000, 86400),
    }


def test_a_budget_wait_can_be_cut_short() -> None:
    budget = RequestBudget([BudgetRule("plan", "/api/", per_minute=1)])
    budget.acquire("GET", URL)
    waits: list[float] = []

    def stop(seconds: float) -> None:
        waits.append(seconds)
        raise Interrupted("stopping")

    with waiting_with(stop), pytest.raises(Interrupted):
        budget.acquire("GET", URL)
    assert waits
    assert 0 < waits[0] <= 61  # the window plus a small safety margin


def test_a_per_second_budget_waits_only_a_small_margin_past_its_window() -> None:
    # A tenth of the window past its end capped a per-second budget at 10/11 of its rate;
    # the margin covers arrival-time jitter (milliseconds), not a share of the window.
    budget = RequestBudget([BudgetRule("second", "/api/", per_second=5)])
    for _ in range(5):
        budget.acquire("GET", URL)
    waits: list[float] = []

    def stop(seconds: float) -> None:
        waits.append(seconds)
        raise Interrupted("stopping")

    with waiting_with(stop), pytest.raises(Interrupted):
        budget.acquire("GET", URL)
    assert 0.9 < waits[0] <= 1.05


@pytest.mark.parametrize(
    "rule",
    [
        BudgetRule("none", "/api/"),
        BudgetRule("two", "/api/", per_minute=1, per_hour=5),
        BudgetRule("all-reserved", "/api/", per_minute=2, reserved_for_writes=2),
    ],
)
def test_invalid_rules_are_refused(rule: BudgetRule) -> None:
    with pytest.raises(ValueError, match=rule.name):
        RequestBudget([rule])


def test_budget_keeps_a_session_under_the_api_limit(zendesk_sim: ZendeskSimulator) -> None:
    zendesk_sim.incremental_per_minute = 3
    zendesk_sim.rate_window = 1.0  # the simulator allows 3 incremental requests a second
    budget = RequestBudget([BudgetRule("incremental", r"/incremental/", per_second=3)])
    session, adapter = make_session(budget=budget)
    session.auth = (f"{zendesk_sim.email}/token", zendesk_sim.token)
    url = f"{zendesk_sim.base_url}/api/v2/incremental/tickets/cursor.json"
    started = time.monotonic()
    statuses = [session.get(url, params={"start_time": 0}).status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert adapter.requests_sent == 10
    assert budget.waited_seconds > 0
    assert time.monotonic() - started >= 2.0  # 10 requests at 3/s need three windows


def test_without_a_budget_the_simulator_answers_429_with_retry_after(
    zendesk_sim: ZendeskSimulator,
) -> None:
    zendesk_sim.incremental_per_minute = 3
    session, _adapter = make_session()
    session.auth = (f"{zendesk_sim.email}/token", zendesk_sim.token)
    url = f"{zendesk_sim.base_url}/api/v2/incremental/tickets/cursor.json"
    answers = [session.get(url, params={"start_time": 0}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    wait = retry_after_seconds(answers[-1].headers)
    assert wait is not None
    assert 1 <= wait <= 61


def test_retry_after_accepts_http_dates() -> None:
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"Retry-After": "2.5"}) == 2.5
    assert retry_after_seconds({}) is None
