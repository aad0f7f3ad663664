"""`pmsync mappings preview` on a rate-limited API: a 429 with Retry-After is waited out.

Zendesk allows 10 export requests a minute; a preview run while the daemon has just used them
is answered 429 with Retry-After. The preview waits as asked (bounded) and shows the records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.simulators.zendesk import ZendeskSimulator, generate

TOKEN_ENV = "PMSYNC_TEST_ZD_PREVIEW_TOKEN"
EXPORT = "/api/v2/incremental/tickets/cursor.json"


@pytest.fixture
def config(tmp_path: Path, zendesk_sim: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    generate(zendesk_sim, organizations=3, users=10, tickets=20, seed=2)
    monkeypatch.setenv(TOKEN_ENV, zendesk_sim.token)
    mapping = tmp_path / "zd.toml"
    mapping.write_text(
        'connector = "zd"\n[streams.tickets]\nentity = "feedback"\n'
        '[streams.tickets.fields]\nid = "id"\nsubject = "subject"\n'
    )
    path = tmp_path / "pmsync.toml"
    path.write_text(
        f"""[store]
url = "sqlite:///{tmp_path / "pmsync.db"}"
[mappings]
paths = ["{mapping}"]

[connectors.zd]
type = "rest"
base_url = "{zendesk_sim.base_url}"
requests_per_minute = 100000
[connectors.zd.auth]
type = "basic"
username = "{zendesk_sim.email}/token"
password = {{ env = "{TOKEN_ENV}" }}
[connectors.zd.endpoints.tickets]
path = "{EXPORT}"
params = {{ per_page = 5 }}
records_path = "tickets"
[connectors.zd.endpoints.tickets.pagination]
style = "next_url"
next_url_path = "after_url"
[connectors.zd.endpoints.tickets.incremental]
cursor_field = "generated_timestamp"
type = "integer"
param = "start_time"
initial_value = 0
"""
    )
    return path


def preview(config: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(config), "mappings", "preview", "zd.tickets", *extra]
    )
    return result.exit_code, result.stdout, result.stderr


def test_preview_waits_out_the_export_limit(config: Path, zendesk_sim: ZendeskSimulator) -> None:
    zendesk_sim.inject(
        429,
        path_prefix=EXPORT,
        headers={"Retry-After": "1"},
        body={"error": "APIRateLimitExceeded", "description": "Number of allowed API requests"},
        times=1,
    )
    code, out, err = preview(config, "-n", "2", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 2
    assert "answered 429" in err
    assert "waiting 1 s before trying again" in err
    assert [r.status for r in zendesk_sim.requests_to(EXPORT)] == [429, 200]


def test_preview_does_not_wait_longer_than_it_says(
    config: Path, zendesk_sim: ZendeskSimulator
) -> None:
    zendesk_sim.inject(429, path_prefix=EXPORT, headers={"Retry-After": "3600"}, times=1)
    code, _out, err = preview(config)
    assert code == 1
    assert "asked to wait 3600 s; preview waits at most 60 s in all" in err
    assert "Traceback" not in err
    assert len(zendesk_sim.requests_to(EXPORT)) == 1
