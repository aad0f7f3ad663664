"""Request budgets pace requests before the API has to answer 429."""

from __future__ import annotations

import time

from connectors.budget import BudgetRule, RequestBudget
from connectors.http import make_session, retry_after_seconds
from simulators.zendesk import ZendeskSimulator


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
