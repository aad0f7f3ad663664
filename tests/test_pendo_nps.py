"""NPS answers from Pendo: poll events paired with their reason, the guide catalog read only
when a poll is new, anonymous visitors and other polls left out, days sliced like usage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from pmsync.connectors.pendo import PendoConnector
from pmsync.connectors.pendo.settings import PendoSettings
from pmsync.simulators.pendo import PendoSimulator
from pmsync.simulators.pendo.data import (
    FEEDBACK_GUIDE_ID,
    FEEDBACK_POLL,
    GUIDES,
    NPS_GUIDE_ID,
    NPS_RATING_POLL,
    NPS_REASON_POLL,
)

NOW = 1_790_000_000 // 86_400 * 86_400 + 43_200
HOUR_MS = 3_600_000


@pytest.fixture
def sim() -> Iterator[PendoSimulator]:
    simulator = PendoSimulator(clock=lambda: NOW)
    simulator.start()
    for guide_id, name, polls in GUIDES:
        simulator.add_guide(guide_id, name, polls)
    yield simulator
    simulator.stop()


def pendo(sim: PendoSimulator, **options: object) -> PendoConnector:
    settings = PendoSettings.model_validate(
        {
            "base_url": sim.base_url,
            "integration_key": SecretStr(sim.integration_key),
            "requests_per_minute": 100_000,
            "backfill_days": 10,
            **options,
        }
    )
    connector = PendoConnector("pendo", settings)
    connector.clock = lambda: NOW
    return connector


def answer(sim: PendoSimulator, days_ago: int, hour: int, visitor: str, rating: object) -> int:
    day = sim.today() - timedelta(days=days_ago)
    at = sim.day_ms(day) + hour * HOUR_MS
    sim.add_poll_response(NPS_GUIDE_ID, NPS_RATING_POLL, "001A", visitor, at, rating)
    return at


def read_all(connector: PendoConnector) -> list[dict[str, object]]:
    pages = list(connector.read(connector.stream("nps_responses"), None))
    return [r for page in pages for r in page.records]


def test_a_rating_comes_with_the_reason_the_same_visitor_gave(sim: PendoSimulator) -> None:
    at = answer(sim, 2, 9, "001A-v1", 3)
    day = sim.today() - timedelta(days=2)
    sim.add_poll_response(NPS_GUIDE_ID, NPS_REASON_POLL, "001A", "001A-v1", at + 5_000, "Slow")
    sim.add_poll_response(  # another visitor's reason is not this one's
        NPS_GUIDE_ID, NPS_REASON_POLL, "001A", "001A-v2", at + 1_000, "Love it"
    )
    sim.add_poll_response(
        FEEDBACK_GUIDE_ID, FEEDBACK_POLL, "001A", "001A-v1", sim.day_ms(day) + HOUR_MS, "yes"
    )
    answer(sim, 1, 10, "_PENDO_T_anonymous", 0)  # anonymous: never read
    later = answer(sim, 1, 11, "001A-v2", "9")  # a rating sent as text
    records = read_all(pendo(sim))
    assert [(r["visitorId"], r["score"], r["reason"]) for r in records] == [
        ("001A-v1", 3.0, "Slow"),
        ("001A-v2", 9.0, None),
    ]
    assert records[0]["id"] == f"001A-v1:{NPS_RATING_POLL}:{at}"
    assert records[1]["browserTime"] == later
    assert records[0]["guideName"] == "Quarterly NPS"
    assert records[0]["pollType"] == "NPSRating"


def test_the_guide_catalog_is_read_once_and_again_only_for_a_new_poll(
    sim: PendoSimulator,
) -> None:
    answer(sim, 3, 9, "001A-v1", 8)
    connector = pendo(sim, reread_days=2)
    pages = list(connector.read(connector.stream("nps_responses"), None))
    bodies = [r.json() for r in sim.requests_to("/api/v1/aggregation")]
    sources = [next(iter(b["request"]["pipeline"][0]["source"])) for b in bodies]
    assert sources.count("guides") == 1
    # One per day of the ten-day backfill; the re-read window (two days) is one slice.
    assert sources.count("pollEvents") == 9

    sim.reset_log()
    connector.clock = lambda: NOW + 15 * 60  # the re-read window is due (reread_interval)
    again = list(connector.read(connector.stream("nps_responses"), pages[-1].cursor))
    assert len(again) == 1
    assert len(sim.requests_to("/api/v1/aggregation")) == 1  # a quiet re-read: one request

    sim.add_guide("guide-nps-2", "Onboarding NPS", [("poll-nps-2", "NPSRating", "Recommend?")])
    day = sim.today() - timedelta(days=1)
    sim.add_poll_response(
        "guide-nps-2", "poll-nps-2", "001A", "001A-v3", sim.day_ms(day) + HOUR_MS, 10
    )
    sim.reset_log()
    newest = list(connector.read(connector.stream("nps_responses"), pages[-1].cursor))
    assert [r["score"] for page in newest for r in page.records] == [10.0]
    assert len(sim.requests_to("/api/v1/aggregation")) == 2  # the catalog, for the new poll


def test_discover_lists_the_nps_fields(sim: PendoSimulator) -> None:
    names = {f.name for f in pendo(sim).discover("nps_responses")}
    assert {"score", "reason", "accountId", "browserTime", "guideName"} <= names
