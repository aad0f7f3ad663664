"""The worked survey-tool example (mappings/examples/delighted.toml): its connector block and
mapping pass `check-config`, and a sync against Delighted's documented answers (served at the
HTTP boundary) lands NPS and CSAT answers as survey responses, incrementally."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from tests.rest_example import uncommented_block

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "mappings" / "examples" / "delighted.toml"
ENV = "PMSYNC_TEST_DELIGHTED_AUTH"
API_KEY = "delighted-test-key"
URL = re.compile(r"https://api\.delighted\.com/v1/survey_responses\.json")


def answer(ident: int, kind: str, score: int, updated: int, **extra: Any) -> dict[str, Any]:
    """One survey response as Delighted lists it with expand[]=person."""
    return {
        "id": str(ident),
        "person": {"id": f"p{ident}", "email": f"Person{ident}@Acme.example", "name": "P"},
        "survey_type": kind,
        "score": score,
        "comment": f"comment {ident}",
        "permalink": f"https://delighted.com/r/{ident}",
        "created_at": updated - 60,
        "updated_at": updated,
        "person_properties": {"Salesforce Account Id": "0015g00000AbCdEAAZ"},
        "notes": [],
        "tags": [],
        "additional_answers": [],
        **extra,
    }


class Delighted:
    """GET /v1/survey_responses.json: page/per_page (at most 100), updated_since, Basic auth."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, list[str]]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        expected = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return 401, {}, json.dumps({"status": 401, "message": "Unauthorized"})
        query = parse_qs(urlparse(request.url).query)
        self.calls.append(query)
        page = int(query.get("page", ["1"])[0])
        size = min(int(query.get("per_page", ["20"])[0]), 100)
        since = int(query.get("updated_since", ["0"])[0])
        matching = sorted(
            (a for a in self.answers if a["updated_at"] >= since), key=lambda a: a["created_at"]
        )
        return 200, {}, json.dumps(matching[(page - 1) * size : page * size])


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV, base64.b64encode(f"{API_KEY}:".encode()).decode())
    block = uncommented_block(EXAMPLE, "# [connectors.delighted]")
    block = block.replace('{ credential = "delighted_basic_auth" }', f'{{ env = "{ENV}" }}')
    path = tmp_path / "pmsync.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        f'[mappings]\npaths = ["{EXAMPLE}"]\n{block}'
    )
    return path


def test_the_example_passes_check_config(config: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    assert result.exit_code == 0, result.output
    assert "1 stream(s) to sync" in result.output


def test_the_example_syncs_nps_and_csat_answers_incrementally(config: Path) -> None:
    base = 1_760_000_000
    answers = [answer(n, "nps" if n % 3 else "csat", n % 11, base + n) for n in range(1, 251)]
    server = Delighted(answers)
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, URL, callback=server)
        runtime = Runtime.load(str(config))
        [first] = runtime.run_once()
        assert first.status == "ok", first.error
        stored = {
            key: fields
            for _c, _s, key, (_e, fields) in runtime.store.iter_unified(["survey_response"])
        }
        assert len(stored) == 250
        one = stored["7"]
        assert (one["kind"], one["score"], one["comment"]) == ("nps", 7, "comment 7")
        assert one["email"] == "person7@acme.example"
        assert one["account_id"] == "0015g00000AbCdEAAZ"
        assert one["responded_at"].startswith("2025-")
        assert stored["3"]["kind"] == "csat"
        assert [c["page"] for c in server.calls] == [["1"], ["2"], ["3"]]  # 3 is short: the end
        assert all(c["updated_since"] == ["1577836800"] for c in server.calls)
        assert all(c["expand[]"] == ["person"] for c in server.calls)

        server.calls.clear()
        answers[9]["comment"], answers[9]["updated_at"] = "edited later", base + 1000
        [second] = runtime.run_once()
        assert second.status == "ok", second.error
        assert server.calls[0]["updated_since"] == [str(base + 250)]
        assert (second.inserted, second.updated) == (0, 1)
        runtime.close()
