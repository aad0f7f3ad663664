"""A broken `rest` configuration is rejected by `pmsync check-config`, before any request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.simulators.posthog import PostHogSimulator
from tests.rest_example import TOKEN_ENV, example_config


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostHogSimulator]:
    simulator = PostHogSimulator()
    simulator.start()
    monkeypatch.setenv(TOKEN_ENV, simulator.api_key)
    yield simulator
    simulator.stop()


def check_config(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(path), "check-config"])
    return result.exit_code, result.output


def broken(tmp_path: Path, sim: PostHogSimulator, old: str, new: str) -> Path:
    path = example_config(tmp_path, sim)
    text = path.read_text()
    assert old in text, f"the example no longer contains {old!r}"
    path.write_text(text.replace(old, new))
    return path


def test_the_shipped_example_is_valid(tmp_path: Path, sim: PostHogSimulator) -> None:
    code, output = check_config(example_config(tmp_path, sim))
    assert code == 0, output
    assert "1 stream(s) to sync" in output
    assert sim.requests == []


def test_wrong_records_path_is_rejected_before_any_request(
    tmp_path: Path, sim: PostHogSimulator
) -> None:
    path = broken(tmp_path, sim, 'records_path = "results"', 'records_path = "results[?"')
    code, output = check_config(path)
    assert code == 1
    assert "connectors.posthog.endpoints.usage.records_path" in output
    assert "'results[?' is not a valid JMESPath expression" in output
    assert "Traceback" not in output
    assert sim.requests == []


def test_unknown_pagination_style_is_rejected_with_a_suggestion(
    tmp_path: Path, sim: PostHogSimulator
) -> None:
    path = broken(tmp_path, sim, 'style = "offset"', 'style = "ofset"')
    code, output = check_config(path)
    assert code == 1
    assert "connectors.posthog.endpoints.usage.pagination.style" in output
    assert "unknown pagination style 'ofset'; did you mean 'offset'?" in output
    assert sim.requests == []


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            'has_more_path = "hasMore"',
            'has_more_path = "hasMore"\nnext_url_path = "next"',
            "endpoints.usage.pagination",
            "next_url_path does not apply to pagination style 'offset'",
        ),
        (
            "limit = 1000",
            "limt = 1000",
            "endpoints.usage.pagination.limt",
            "unknown field 'limt'; did you mean 'limit'?",
        ),
        (
            "LIMIT {{limit}} OFFSET {{offset}}",
            "LIMIT {{limit}} OFFSET {{ofset}}",
            "endpoints.usage",
            "unknown placeholder {{ofset}}; did you mean 'offset'?",
        ),
        (
            'type = "bearer"',
            'type = "baerer"',
            "auth.type",
            "unknown auth type 'baerer'; did you mean 'bearer'?",
        ),
        (
            'cursor_field = "day"',
            'cursor_field = "day."',
            "endpoints.usage.incremental.cursor_field",
            "is not a valid JMESPath expression",
        ),
        (
            'type = "date"',
            'type = "integer"',
            "endpoints.usage.incremental",
            "lookback applies to datetime and date cursors only",
        ),
    ],
)
def test_other_mistakes_name_the_field(
    tmp_path: Path, sim: PostHogSimulator, old: str, new: str, where: str, message: str
) -> None:
    code, output = check_config(broken(tmp_path, sim, old, new))
    assert code == 1
    assert f"connectors.posthog.{where}" in output
    assert message in output
    assert sim.requests == []


def test_a_literal_token_is_refused(tmp_path: Path, sim: PostHogSimulator) -> None:
    path = broken(tmp_path, sim, f'{{ env = "{TOKEN_ENV}" }}', '"phx_literal_secret"')
    code, output = check_config(path)
    assert code == 1
    assert "connectors.posthog.auth.token" in output
    assert "secrets must not be written in the file" in output
    assert "phx_literal_secret" not in output


def test_a_credential_in_plain_headers_is_refused(tmp_path: Path, sim: PostHogSimulator) -> None:
    path = broken(
        tmp_path, sim, 'type = "rest"\n', 'type = "rest"\nheaders = { X-Api-Key = "abc123" }\n'
    )
    code, output = check_config(path)
    assert code == 1
    assert "connectors.posthog.headers" in output
    assert "header 'X-Api-Key' looks like a credential; set it under auth" in output
    assert "abc123" not in output
