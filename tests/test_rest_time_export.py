"""The worked time-based export (mappings/examples/zendesk_organizations.toml) against Zendesk.

The example reads an API that wants epoch seconds while its records carry ISO times, names a
next page on every answer, marks deleted records, and allows 10 export requests a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from tests.rest_zendesk_example import TOKEN_ENV, example_config

EXPORT = "/api/v2/incremental/organizations.json"
STREAM = "zendesk_orgs.organizations"


@pytest.fixture
def sim(zendesk_sim: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch) -> ZendeskSimulator:
    generate(zendesk_sim, organizations=30, users=20, tickets=40, seed=9)
    for org_id in sorted(zendesk_sim.organizations)[:3]:
        zendesk_sim.delete_organization(org_id)
    monkeypatch.setenv(TOKEN_ENV, zendesk_sim.token)
    return zendesk_sim


@pytest.fixture
def runtime(tmp_path: Path, sim: ZendeskSimulator) -> Iterator[Runtime]:
    runtime = Runtime.load(str(example_config(tmp_path, sim, per_page=7)))
    yield runtime
    runtime.close()


def epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp())


def test_the_example_passes_check_config_without_a_request(
    tmp_path: Path, sim: ZendeskSimulator
) -> None:
    result = CliRunner().invoke(
        cli, ["--config", str(example_config(tmp_path, sim)), "check-config"]
    )
    assert result.exit_code == 0, result.output
    assert "1 stream(s) to sync" in result.output
    assert sim.requests == []


def test_the_example_syncs_with_epoch_start_times_and_tombstones_deleted_organizations(
    runtime: Runtime, sim: ZendeskSimulator
) -> None:
    (first,) = runtime.run_once([STREAM])
    assert first.status == "ok", first.error
    starts = [r.query.get("start_time") for r in sim.requests_to(EXPORT)]
    assert starts[0] == str(epoch("2020-01-01T00:00:00Z"))  # initial_value, sent as epoch
    assert all(s is not None and s.isdigit() for s in starts)
    assert len(starts) == first.pages >= 4  # 30 organizations, 7 a page, until end_of_stream

    deleted = {str(i) for i, o in sim.organizations.items() if o["deleted_at"] is not None}
    stored = list(
        runtime.store.iter_records(
            connector="zendesk_orgs", stream="organizations", include_deleted=True
        )
    )
    assert {r.key for r in stored if r.deleted_at is not None} == deleted
    assert {r.key for r in stored if r.deleted_at is None} == {
        str(i) for i in sim.organizations
    } - deleted

    sim.reset_log()
    (again,) = runtime.run_once([STREAM])
    assert again.status == "ok", again.error
    newest = max(o["updated_at"] for o in sim.organizations.values())
    assert [r.query.get("start_time") for r in sim.requests_to(EXPORT)] == [str(epoch(newest))]
    assert again.written == 0  # the boundary repeats are recognised, nothing rewritten

    changed = sorted(sim.organizations)[10]
    sim.put_organization({**sim.organizations[changed], "name": "Renamed Inc."})
    (third,) = runtime.run_once([STREAM])
    assert third.status == "ok", third.error
    assert third.updated == 1


def test_an_organization_no_longer_marked_deleted_is_live_again(
    runtime: Runtime, sim: ZendeskSimulator
) -> None:
    assert runtime.run_once([STREAM])[0].status == "ok"
    restored = next(i for i, o in sim.organizations.items() if o["deleted_at"] is not None)
    sim.put_organization({**sim.organizations[restored], "deleted_at": None})
    (result,) = runtime.run_once([STREAM])
    assert result.status == "ok", result.error
    (record,) = [
        r
        for r in runtime.store.iter_records(connector="zendesk_orgs", include_deleted=True)
        if r.key == str(restored)
    ]
    assert record.deleted_at is None
