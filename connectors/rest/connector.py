"""`rest`: any JSON API described in configuration, one stream per endpoint.

The settings say how to authenticate, what to send, where the records are (JMESPath), how to
page (paginators.py) and what marks a change (cursor.py). Each page is committed with a cursor
that can resume the read mid-way; when the read ends, the cursor moves to the largest change
marker seen, and the next read starts there (minus the lookback).

Deletes: records matching the endpoint's `deleted_when` go to the page's `deleted` list (the
engine tombstones them); an endpoint read in full each cycle marks its reads as censuses.
Pacing: the connector's total budget counts every request; an endpoint's own limit and a
shared group's limit are budget rules scoped to that endpoint's requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import jmespath
import requests
from pydantic import BaseModel

from pmsync.connectors.attribution import claim
from pmsync.connectors.base import Connector, FieldInfo, Page, Record, StreamSpec, SweepPage
from pmsync.connectors.budget import BudgetRule, RequestBudget, budget_scope
from pmsync.connectors.http import make_session, request_json, send
from pmsync.connectors.rest.cursor import RestCursor, later, outgoing, step_back
from pmsync.connectors.rest.paginators import PaginationLoop, Paginator, make_paginator
from pmsync.connectors.rest.settings import EndpointSettings, RestSettings
from pmsync.connectors.rest.templates import render
from pmsync.errors import FatalError
from pmsync.logs import get_logger
from pmsync.validation import did_you_mean

log = get_logger("pmsync.connectors.rest")


class RestConnector(Connector):
    """Reads the endpoints its settings describe, with requests, one session per instance."""

    type_name = "rest"
    description = "Any JSON API, described in configuration (auth, records path, pagination)"
    settings_model = RestSettings

    def __init__(self, name: str, settings: RestSettings) -> None:
        super().__init__(name, settings)
        self.settings: RestSettings = settings
        self._session: requests.Session | None = None

    # ---- plumbing ---------------------------------------------------------------------

    def session(self) -> requests.Session:
        if self._session is None:
            budget = RequestBudget(self._budget_rules())
            session, adapter = make_session(
                ca_bundle=self.settings.ca_bundle, timeout=self.settings.timeout, budget=budget
            )
            claim(adapter, self.name)
            session.headers.update(self.settings.headers)
            auth = self.settings.auth
            secret = auth.token.get_secret_value() if auth.token else ""
            if auth.type == "bearer":
                session.headers["Authorization"] = f"Bearer {secret}"
            elif auth.type == "header" and auth.name:
                session.headers[auth.name] = f"{auth.prefix} {secret}" if auth.prefix else secret
            elif auth.type == "basic" and auth.password is not None:
                session.auth = (auth.username or "", auth.password.get_secret_value())
            self._session = session
        return self._session

    def _budget_rules(self) -> list[BudgetRule]:
        """The total for every request, then each endpoint's own limit and each group's."""
        rules = [BudgetRule("rest", r"", per_minute=self.settings.requests_per_minute)]
        for name, endpoint in self.settings.endpoints.items():
            if endpoint.requests_per_minute is not None:
                scope = f"endpoint:{name}"
                rules.append(
                    BudgetRule(
                        scope,
                        r"",
                        per_minute=endpoint.requests_per_minute,
                        scopes=frozenset({scope}),
                    )
                )
        for group, limit in self.settings.rate_limit_groups.items():
            scope = f"group:{group}"
            rules.append(BudgetRule(scope, r"", per_minute=limit, scopes=frozenset({scope})))
        return rules

    @staticmethod
    def _scopes(stream: str, endpoint: EndpointSettings) -> list[str]:
        scopes = [f"endpoint:{stream}"]
        if endpoint.rate_limit_group is not None:
            scopes.append(f"group:{endpoint.rate_limit_group}")
        return scopes

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None

    def _endpoint(self, name: str) -> EndpointSettings:
        endpoint = self.settings.endpoints.get(name)
        if endpoint is None:
            self.stream(name)  # raises the did-you-mean error
            raise FatalError(f"no endpoint '{name}'", connector=self.name)
        return endpoint

    def _send(
        self,
        stream: str,
        endpoint: EndpointSettings,
        paginator: Paginator,
        since: Any,
    ) -> tuple[requests.Response, Any]:
        """One page request; every failure becomes an error of the taxonomy."""
        url, params, body = self._request(
            endpoint, paginator, self._outgoing(stream, endpoint, since)
        )
        if self.settings.auth.type == "query" and self.settings.auth.token is not None:
            params[str(self.settings.auth.name)] = self.settings.auth.token.get_secret_value()
        with budget_scope(*self._scopes(stream, endpoint)):
            return request_json(
                self.session(),
                endpoint.method,
                url,
                params=params or None,
                json=body,
                headers=endpoint.headers,
                connector=self.name,
                what=f"{endpoint.method} {stream}",
            )

    def _request(
        self, endpoint: EndpointSettings, paginator: Paginator, since: Any
    ) -> tuple[str, dict[str, Any], Any]:
        """URL, query parameters and JSON body of the next page's request."""
        variables = {**paginator.variables(), "since": since}
        body = render(endpoint.body, variables) if endpoint.body is not None else None
        url = paginator.url()
        if url is not None:  # a next page the API named: requested exactly as named
            return url, {}, body
        params = {k: v for k, v in render(endpoint.params, variables).items() if v is not None}
        incremental = endpoint.incremental
        if incremental is not None and incremental.param and since is not None:
            if incremental.send_in == "body":
                body = {**(body or {}), incremental.param: since}
            elif incremental.send_in == "query":
                params[incremental.param] = since
        # The paginator's parameters come last: where the incremental parameter is also the
        # page token (since_id), the first page carries the cursor and later pages the token.
        extra = paginator.params()
        if endpoint.pagination.send_in == "query":
            params.update(extra)
        elif endpoint.pagination.send_in == "body" and extra:
            body = {**(body or {}), **extra}
        return self._url(render(endpoint.path, variables)), params, body

    def _outgoing(self, stream: str, endpoint: EndpointSettings, since: Any) -> Any:
        """The incremental value in the format the API wants (incremental.format)."""
        incremental = endpoint.incremental
        if incremental is None:
            return since
        try:
            return outgoing(incremental.type, incremental.format, since)
        except ValueError:
            raise FatalError(
                f"{stream}: the cursor value {since!r} cannot be read as a {incremental.type} "
                f"to send as {incremental.format}; check incremental.cursor_field, or run "
                f"`pmsync sync --stream {self.name}.{stream} --full-refresh`",
                connector=self.name,
            ) from None

    def _url(self, path: str) -> str:
        if path.startswith(("https://", "http://")):
            return path
        return f"{self.settings.base_url}{path}"

    # ---- interface --------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        return [
            StreamSpec(
                name,
                endpoint.key,
                RestCursor,
                endpoint.description or f"{endpoint.method} {endpoint.path}",
                object_name=name,
                sweep="census" if endpoint.census_by_sweep else "none",
            )
            for name, endpoint in self.settings.endpoints.items()
        ]

    def check(self) -> None:
        if self.settings.check_path is not None:
            send(
                self.session(),
                "GET",
                self._url(self.settings.check_path),
                connector=self.name,
                what=f"GET {self.settings.check_path}",
            )
            return
        name = next(iter(self.settings.endpoints))
        next(iter(self.read(self.stream(name), None)), None)

    def objects(self) -> Sequence[str]:
        return list(self.settings.endpoints)

    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        """The fields of the first page's records (one request)."""
        spec = self.stream(object_name)
        page = next(iter(self.read(spec, None)), None)
        seen: dict[str, str] = {}
        for record in [*page.records, *page.deleted] if page else []:
            for key, value in record.items():
                seen.setdefault(key, type(value).__name__ if value is not None else "null")
        return [FieldInfo(name, kind) for name, kind in seen.items()]

    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        endpoint = self._endpoint(stream.name)
        state = cursor if isinstance(cursor, RestCursor) else None
        return self._pages(stream.name, endpoint, state)

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        if stream.sweep != "census":
            return super().sweep(stream)
        endpoint = self._endpoint(stream.name)
        return (
            SweepPage(present=p.records, deleted=p.deleted)
            for p in self._pages(stream.name, endpoint, None)
        )

    # ---- reading ----------------------------------------------------------------------

    def _pages(
        self, stream: str, endpoint: EndpointSettings, state: RestCursor | None
    ) -> Iterator[Page]:
        incremental = endpoint.incremental
        since, max_seen, position = self._start(endpoint, state)
        census = endpoint.census_by_read and position is None
        paginator = make_paginator(endpoint.pagination, position)
        previous_digest = b""
        while True:
            response, body = self._send(stream, endpoint, paginator, since)
            digest = hashlib.blake2b(response.content, digest_size=16).digest()
            if digest == previous_digest and response.content:
                raise FatalError(
                    f"{stream}: the API answered the same page twice; check the pagination "
                    "settings",
                    connector=self.name,
                )
            previous_digest = digest
            records = self._records(stream, endpoint, body)
            if incremental is not None:
                for record in records:
                    value = jmespath.search(incremental.cursor_field, record)
                    max_seen = later(incremental.type, max_seen, value)
            live, deleted = self._split_deleted(endpoint, records)
            try:
                more = paginator.advance(response, body, len(records))
            except PaginationLoop as exc:
                raise FatalError(f"{stream}: {exc}", connector=self.name) from None
            if more:
                cursor = RestCursor(since=since, max_seen=max_seen, page=paginator.position)
            else:
                cursor = RestCursor(since=max_seen) if incremental is not None else RestCursor()
            yield Page(records=live, cursor=cursor, deleted=deleted, begins_census=census)
            if not more:
                return
            census = False

    @staticmethod
    def _start(
        endpoint: EndpointSettings, state: RestCursor | None
    ) -> tuple[Any, Any, dict[str, Any] | None]:
        """(value to send, largest value seen, page position) where a read begins or resumes."""
        if state is not None and state.page is not None:
            return state.since, state.max_seen, state.page
        incremental = endpoint.incremental
        base = state.since if state is not None else None
        if base is None and incremental is not None:
            base = incremental.initial_value
        since = base
        if incremental is not None and base is not None and state is not None:
            since = step_back(incremental.type, base, incremental.lookback)
        return since, base, None

    @staticmethod
    def _split_deleted(
        endpoint: EndpointSettings, records: list[Record]
    ) -> tuple[list[Record], list[Record]]:
        """Records the endpoint's `deleted_when` marks as deletions, apart from the live ones."""
        if endpoint.deleted_when is None:
            return records, []
        live: list[Record] = []
        deleted: list[Record] = []
        for record in records:
            marked = jmespath.search(endpoint.deleted_when, record)
            (deleted if marked else live).append(record)
        return live, deleted

    def _records(self, stream: str, endpoint: EndpointSettings, body: Any) -> list[Record]:
        found = jmespath.search(endpoint.records_path, body)
        if not isinstance(found, list):
            keys = sorted(body) if isinstance(body, dict) else []
            shape = "nothing" if found is None else f"a {type(found).__name__}, not a list"
            raise FatalError(
                f"{stream}: records_path '{endpoint.records_path}' found {shape} in the answer"
                f"{did_you_mean(endpoint.records_path, keys)}"
                + (f" (its top-level fields: {', '.join(keys[:12])})" if keys else ""),
                connector=self.name,
            )
        if endpoint.columns_path is None:
            return [r if isinstance(r, dict) else {"_malformed": r} for r in found]
        columns = jmespath.search(endpoint.columns_path, body)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise FatalError(
                f"{stream}: columns_path '{endpoint.columns_path}' found no list of column names",
                connector=self.name,
            )
        return [
            dict(zip(columns, row, strict=True))
            if isinstance(row, list) and len(row) == len(columns)
            else {"_malformed": row}
            for row in found
        ]
