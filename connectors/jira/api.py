"""Jira's REST API on pmsync's own session: search, edits, properties, remote links, look-ups.

Every request goes through the connector's ConnectorAdapter (base URL, CA bundle passed with
each request, default timeout, the request budget, the request counter and observers) and every
answer is mapped onto the error taxonomy the same way, whichever call sent it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import requests

from pmsync.connectors.http import error_for_exception, loads_lenient
from pmsync.connectors.jira.errors import response_error
from pmsync.errors import RetriableError


class JiraApi:
    """`{server}/rest/api/{version}/...` on one requests session."""

    def __init__(
        self, session: requests.Session, server: str, version: str, *, connector: str
    ) -> None:
        self.session = session
        self.root = f"{server.rstrip('/')}/rest/api/{version}"
        self.connector = connector

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> requests.Response:
        """One request; a transport failure (reset, timeout, cut-off body) is RetriableError.
        The caller reads the status: edits tell several 4xx answers apart."""
        try:
            return self.session.request(
                method, self.url(path), params=params, json=body, headers=_JSON
            )
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.connector, what=what) from None

    def json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok: Collection[int] = (200,),
    ) -> Any:
        """One request expecting a status in `ok` and a JSON answer; errors of the taxonomy."""
        response = self.send(method, path, what=what, params=params, body=body)
        if response.status_code not in ok:
            raise response_error(response, connector=self.connector, what=what)
        try:
            return loads_lenient(response.content)
        except ValueError:
            raise RetriableError(
                f"{what}: the answer was not JSON", connector=self.connector
            ) from None


_JSON = {"Accept": "application/json"}
