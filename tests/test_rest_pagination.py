"""Each pagination style of the `rest` connector against a small JSON API (mocked at HTTP)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import BaseModel

from pmsync.connectors.base import Page
from pmsync.connectors.rest import RestConnector
from pmsync.connectors.rest.cursor import RestCursor, later, step_back
from pmsync.connectors.rest.settings import RestSettings
from pmsync.errors import AuthError, FatalError, RetriableError

API = "https://api.example.com"
ITEMS = [{"id": n, "updated_at": f"2024-05-{n:02d}T10:00:00Z"} for n in range(1, 8)]


def connector(endpoint: dict[str, Any], **settings: Any) -> RestConnector:
    config = RestSettings.model_validate(
        {"base_url": API, "endpoints": {"items": {"path": "/items", **endpoint}}, **settings}
    )
    return RestConnector("api", config)


def read(conn: RestConnector, cursor: BaseModel | None = None) -> list[Page]:
    return list(conn.read(conn.stream("items"), cursor))


def ids(pages: list[Page]) -> list[int]:
    return [int(r["id"]) for p in pages for r in p.records]


def query(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


@responses.activate
def test_cursor_pagination_follows_tokens_and_resumes_mid_read() -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        start = int(query(request).get("cursor", "0"))
        chunk = ITEMS[start : start + 3]
        token = str(start + 3) if start + 3 < len(ITEMS) else None
        return 200, {}, json.dumps({"data": chunk, "meta": {"next": token}})

    responses.add_callback(responses.GET, f"{API}/items", callback=answer)
    conn = connector(
        {"records_path": "data", "pagination": {"style": "cursor", "next_token_path": "meta.next"}}
    )
    pages = read(conn)
    assert ids(pages) == [1, 2, 3, 4, 5, 6, 7]
    resumed = read(conn, pages[0].cursor)  # RestCursor with page={"token": "3"}
    assert ids(resumed) == [4, 5, 6, 7]


@responses.activate
def test_next_url_and_link_header_pagination() -> None:
    responses.get(f"{API}/items", json={"items": ITEMS[:4], "next": "/items?after=4"})
    responses.get(f"{API}/items?after=4", json={"items": ITEMS[4:], "next": None})
    conn = connector(
        {"records_path": "items", "pagination": {"style": "next_url", "next_url_path": "next"}}
    )
    assert ids(read(conn)) == [1, 2, 3, 4, 5, 6, 7]

    responses.reset()
    responses.get(
        f"{API}/items",
        json=ITEMS[:4],
        headers={"Link": f'<{API}/items?page=2>; rel="next"'},
    )
    responses.get(f"{API}/items?page=2", json=ITEMS[4:])
    linked = connector({"records_path": "@", "pagination": {"style": "link_header"}})
    assert ids(read(linked)) == [1, 2, 3, 4, 5, 6, 7]


@responses.activate
def test_page_number_pagination_stops_on_a_short_page() -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        page, size = int(query(request)["p"]), int(query(request)["size"])
        return 200, {}, json.dumps({"rows": ITEMS[(page - 1) * size : page * size]})

    responses.add_callback(responses.GET, f"{API}/items", callback=answer)
    conn = connector(
        {
            "records_path": "rows",
            "pagination": {
                "style": "page_number",
                "page_param": "p",
                "page_size_param": "size",
                "page_size": 3,
            },
        }
    )
    pages = read(conn)
    assert ids(pages) == [1, 2, 3, 4, 5, 6, 7]
    assert len(responses.calls) == 3


@responses.activate
def test_incremental_param_sends_the_largest_value_seen() -> None:
    responses.get(f"{API}/items", json={"data": ITEMS})
    conn = connector(
        {
            "records_path": "data",
            "incremental": {"cursor_field": "updated_at", "param": "updated_since"},
        }
    )
    pages = read(conn)
    assert pages[-1].cursor == RestCursor(since="2024-05-07T10:00:00Z")
    read(conn, pages[-1].cursor)
    assert query(responses.calls[-1].request) == {"updated_since": "2024-05-07T10:00:00Z"}


def test_cursor_values_compare_as_values_not_text() -> None:
    assert later("integer", 9, 10) == 10  # as text, "9" > "10"
    assert later("datetime", "2024-05-01T23:00:00+02:00", "2024-05-01T22:00:00Z") == (
        "2024-05-01T22:00:00Z"
    )
    assert later("date", "2024-05-03", None) == "2024-05-03"
    assert step_back("date", "2024-05-03", timedelta(days=2)) == "2024-05-01"


@responses.activate
def test_429_is_retriable_with_retry_after_and_401_is_a_configuration_error() -> None:
    responses.get(f"{API}/items", status=429, headers={"Retry-After": "7"}, json={})
    conn = connector({"records_path": "data"})
    with pytest.raises(RetriableError) as info:
        read(conn)
    assert info.value.retry_after == 7
    responses.reset()
    responses.get(f"{API}/items", status=401, json={"detail": "bad key"})
    with pytest.raises(AuthError, match="api: GET items answered 401"):
        read(conn)


@responses.activate
def test_a_records_path_that_finds_nothing_names_the_fields_there() -> None:
    responses.get(f"{API}/items", json={"results": ITEMS, "count": 7})
    conn = connector({"records_path": "result"})
    with pytest.raises(FatalError) as info:
        read(conn)
    message = str(info.value)
    assert "records_path 'result' found nothing in the answer; did you mean 'results'?" in message
    assert "count, results" in message


@responses.activate
def test_an_api_that_ignores_the_offset_is_stopped() -> None:
    responses.get(f"{API}/items", json={"data": ITEMS[:2]})
    conn = connector({"records_path": "data", "pagination": {"style": "offset", "limit": 2}})
    with pytest.raises(FatalError, match="answered the same page twice"):
        read(conn)


@responses.activate
def test_auth_styles_reach_the_request() -> None:
    responses.get(f"{API}/items", json={"data": []})
    header = connector(
        {"records_path": "data"},
        auth={"type": "header", "name": "X-Api-Key", "token": "k-123"},
    )
    read(header)
    assert responses.calls[-1].request.headers["X-Api-Key"] == "k-123"
    basic = connector(
        {"records_path": "data"}, auth={"type": "basic", "username": "u", "password": "p"}
    )
    read(basic)
    assert responses.calls[-1].request.headers["Authorization"].startswith("Basic ")
    in_query = connector(
        {"records_path": "data"}, auth={"type": "query", "name": "api_key", "token": "q-9"}
    )
    read(in_query)
    assert query(responses.calls[-1].request) == {"api_key": "q-9"}


@responses.activate
def test_each_endpoint_is_its_own_stream_with_its_own_cursor() -> None:
    responses.get(f"{API}/items", json={"data": ITEMS[:2]})
    responses.get(f"{API}/accounts", json={"accounts": [{"key": "a1", "rev": 4}]})
    config = RestSettings.model_validate(
        {
            "base_url": API,
            "endpoints": {
                "items": {"path": "/items", "records_path": "data"},
                "accounts": {
                    "path": "/accounts",
                    "records_path": "accounts",
                    "key": "key",
                    "incremental": {"cursor_field": "rev", "type": "integer", "param": "since"},
                },
            },
        }
    )
    conn = RestConnector("api", config)
    assert [s.name for s in conn.streams()] == ["items", "accounts"]
    assert conn.stream("accounts").key == "key"
    accounts = list(conn.read(conn.stream("accounts"), None))
    assert accounts[-1].cursor == RestCursor(since=4)
    assert ids(read(conn)) == [1, 2]
    assert read(conn)[-1].cursor == RestCursor()  # not incremental: a full read each cycle
