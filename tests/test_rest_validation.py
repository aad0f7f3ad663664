"""`rest` settings that check-config refuses or renders, and the README that documents them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from pydantic import ValidationError

from pmsync.app.cli import cli
from pmsync.connectors.rest import RestConnector
from pmsync.connectors.rest.cursor import outgoing
from pmsync.connectors.rest.settings import STYLE_OPTIONS, RestSettings
from pmsync.simulators.posthog import PostHogSimulator
from tests.rest_example import TOKEN_ENV, example_config

REPO = Path(__file__).resolve().parent.parent
API = "https://api.example.com"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostHogSimulator]:
    simulator = PostHogSimulator()
    simulator.start()
    monkeypatch.setenv(TOKEN_ENV, simulator.api_key)
    yield simulator
    simulator.stop()


def check_config(tmp_path: Path, sim: PostHogSimulator, old: str, new: str) -> tuple[int, str]:
    path = example_config(tmp_path, sim)
    text = path.read_text()
    assert old in text, f"the example no longer contains {old!r}"
    path.write_text(text.replace(old, new))
    result = CliRunner().invoke(cli, ["--config", str(path), "check-config"])
    return result.exit_code, result.output


def one_endpoint(endpoint: dict[str, Any], **settings: Any) -> RestSettings:
    """Settings with one endpoint, `items` at /items."""
    return RestSettings.model_validate(
        {"base_url": API, "endpoints": {"items": {"path": "/items", **endpoint}}, **settings}
    )


def endpoint_error(endpoint: dict[str, Any], **settings: Any) -> str:
    with pytest.raises(ValidationError) as info:
        one_endpoint(endpoint, **settings)
    return str(info.value)


# ---- 5. placeholders are checked, malformed ones included ----------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        ('"{{since}}"', '"{{since|epoch}}"', "{{since|epoch}}"),
        ("OFFSET {{offset}}", "OFFSET {{offset", "{{offset"),
        ("LIMIT {{limit}}", "LIMIT {{ limit.value }}", "{{ limit.value }}"),
    ],
)
def test_a_malformed_placeholder_is_refused_before_any_request(
    tmp_path: Path, sim: PostHogSimulator, old: str, new: str, shown: str
) -> None:
    code, output = check_config(tmp_path, sim, old, new)
    assert code == 1, output
    assert "connectors.posthog.endpoints.usage" in output
    assert f"malformed placeholder '{shown}'" in output
    assert "Traceback" not in output
    assert sim.requests == []


# ---- 2. the cursor's output format ---------------------------------------------------------------


def test_cursor_values_are_sent_in_the_declared_format() -> None:
    iso = "2024-05-01T10:00:30.250+02:00"
    assert outgoing("datetime", "epoch", iso) == 1714550430
    assert outgoing("datetime", "epoch_ms", iso) == 1714550430250
    assert outgoing("datetime", "iso", iso) == "2024-05-01T08:00:30Z"
    assert outgoing("datetime", "%Y-%m-%d %H:%M", iso) == "2024-05-01 08:00"
    assert outgoing("datetime", "as_read", iso) == iso
    assert outgoing("datetime", "iso", 1714550430) == "2024-05-01T08:00:30Z"  # epoch in records
    assert outgoing("date", "epoch", "2024-05-01") == 1714521600
    assert outgoing("date", "iso", "2024-05-01T23:59:00Z") == "2024-05-01"
    assert outgoing("datetime", "epoch", None) is None


@responses.activate
def test_since_renders_in_the_format_in_params_and_placeholders() -> None:
    responses.get(f"{API}/items", json={"data": []})
    config = one_endpoint(
        {
            "records_path": "data",
            "params": {"q": "changed>{{since}}", "from": "{{since}}"},
            "incremental": {
                "cursor_field": "updated_at",
                "format": "epoch",
                "param": "start_time",
                "initial_value": "2024-05-01T00:00:00Z",
            },
        }
    )
    connector = RestConnector("api", config)
    list(connector.read(connector.stream("items"), None))
    url = responses.calls[0].request.url or ""
    assert "start_time=1714521600" in url
    assert "from=1714521600" in url
    assert "q=changed%3E1714521600" in url


@pytest.mark.parametrize(
    ("incremental", "message"),
    [
        ({"format": "epoc"}, "unknown cursor format 'epoc'; did you mean 'epoch'?"),
        ({"type": "integer", "format": "epoch"}, "format applies to datetime and date cursors"),
        (
            {"format": "epoch", "initial_value": "yesterday"},
            "initial_value 'yesterday' cannot be read as a datetime, so it cannot be sent as epoch",
        ),
    ],
)
def test_a_wrong_format_is_refused(incremental: dict[str, Any], message: str) -> None:
    error = endpoint_error(
        {"records_path": "data", "incremental": {"cursor_field": "updated_at", **incremental}}
    )
    assert message in error


# ---- 1. stop flags for every paging style --------------------------------------------------------


@responses.activate
def test_a_last_page_flag_ends_a_cursor_read_that_names_a_next_token() -> None:
    responses.get(f"{API}/items", json={"data": [{"id": 1}], "next": "t1", "done": False})
    responses.get(f"{API}/items?cursor=t1", json={"data": [{"id": 2}], "next": "t2", "done": True})
    config = one_endpoint(
        {
            "records_path": "data",
            "pagination": {"style": "cursor", "next_token_path": "next", "last_page_path": "done"},
        }
    )
    connector = RestConnector("api", config)
    pages = list(connector.read(connector.stream("items"), None))
    assert [r["id"] for p in pages for r in p.records] == [1, 2]
    assert len(responses.calls) == 2


def test_both_stop_flags_at_once_are_refused() -> None:
    error = endpoint_error(
        {
            "records_path": "data",
            "pagination": {
                "style": "next_url",
                "next_url_path": "next",
                "has_more_path": "more",
                "last_page_path": "end_of_stream",
            },
        }
    )
    assert "set has_more_path" in error
    assert "or last_page_path" in error


# ---- 3. one parameter sent by two settings -------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            {
                "pagination": {"style": "offset", "offset_param": "start"},
                "incremental": {"cursor_field": "id", "type": "integer", "param": "start"},
            },
            "incremental.param 'start' is also pagination.offset_param",
        ),
        (
            {"params": {"limit": 50}, "pagination": {"style": "offset"}},
            "params.limit is also sent as pagination.limit_param",
        ),
        (
            {
                "params": {"since_id": 0},
                "incremental": {"cursor_field": "id", "type": "integer", "param": "since_id"},
            },
            "params.since_id is also sent as incremental.param",
        ),
    ],
)
def test_a_parameter_two_settings_would_send_is_refused(
    endpoint: dict[str, Any], message: str
) -> None:
    assert message in endpoint_error({"records_path": "data", **endpoint})


def test_the_page_token_may_be_the_incremental_parameter() -> None:
    settings = one_endpoint(
        {
            "records_path": "links",
            "pagination": {
                "style": "cursor",
                "token_param": "since_id",
                "next_token_path": "links[-1].id",
            },
            "incremental": {"cursor_field": "id", "type": "integer", "param": "since_id"},
        }
    )
    assert settings.endpoints["items"].pagination.token_param == "since_id"


# ---- 6. limit groups -----------------------------------------------------------------------------


def test_an_unknown_or_unused_limit_group_is_refused() -> None:
    unknown = endpoint_error(
        {"records_path": "data", "rate_limit_group": "export"},
        rate_limit_groups={"exports": 10},
    )
    assert "endpoints.items.rate_limit_group: unknown group 'export'" in unknown
    assert "did you mean 'exports'?" in unknown
    unused = endpoint_error({"records_path": "data"}, rate_limit_groups={"exports": 10})
    assert "rate_limit_groups.exports is named by no endpoint" in unused
    above = endpoint_error({"records_path": "data", "requests_per_minute": 100})
    assert "endpoints.items.requests_per_minute = 100 is more than" in above


# ---- 8. the README says which options go with which style ----------------------------------------


def readme_styles() -> dict[str, tuple[set[str], str]]:
    """style -> (its options, its stop condition) from the README's pagination table."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("#### `rest`") :]
    rows: dict[str, tuple[set[str], str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `(\w+)` \| (.*?) \| (.*) \|$", line)
        if match and match.group(1) in STYLE_OPTIONS:
            rows[match.group(1)] = (set(re.findall(r"`(\w+)`", match.group(2))), match.group(3))
    return rows


def test_the_readme_lists_every_pagination_style_with_its_options() -> None:
    documented = readme_styles()
    assert set(documented) == set(STYLE_OPTIONS)
    for style, allowed in STYLE_OPTIONS.items():
        options, stop = documented[style]
        assert options == set(allowed), style
        assert stop.strip(), f"{style}: no stop condition"
