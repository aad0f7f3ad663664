"""Pagination styles as small state machines: one class per style, one shared interface.

A paginator knows the position of the next request (`position`, JSON that a cursor can hold,
so a read resumes mid-way), what that request must carry (`variables` for placeholders,
`params` for the query string or body, or a whole `url`), and how an answer moves it on
(`advance`, False when there is no next page). A paginator that would ask for the same page
twice raises instead of looping; a stop flag in the answer (`has_more_path` false,
`last_page_path` true) ends the read first, whatever else the answer says, since APIs such as
Zendesk's exports name a next page on their last page too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import jmespath
import requests

from pmsync.connectors.rest.settings import PaginationSettings


class PaginationLoop(Exception):
    """The API handed back a position already used; following it would never end."""


class Paginator(ABC):
    """Base of every style; `position` is None before the first page."""

    def __init__(self, settings: PaginationSettings, position: dict[str, Any] | None) -> None:
        self.settings = settings
        self.position: dict[str, Any] = dict(position or self.start())

    def start(self) -> dict[str, Any]:
        return {}

    def variables(self) -> dict[str, Any]:
        """Values for {{placeholders}} in the next request."""
        return {}

    def params(self) -> dict[str, Any]:
        """Parameters the next request carries (query string or body, per send_in)."""
        return {}

    def url(self) -> str | None:
        """An absolute URL for the next request, replacing path and parameters."""
        return None

    @abstractmethod
    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        """Move to the page after this answer; False when this was the last page."""

    def _more(self, body: Any) -> bool | None:
        """Whether the answer's own flag says more pages follow; None without a flag."""
        if self.settings.has_more_path is not None:
            return bool(jmespath.search(self.settings.has_more_path, body))
        if self.settings.last_page_path is not None:
            return not jmespath.search(self.settings.last_page_path, body)
        return None


class SinglePage(Paginator):
    """style = "none": one request."""

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        return False


class CursorPaginator(Paginator):
    """style = "cursor": the answer carries the next page's token."""

    def start(self) -> dict[str, Any]:
        return {"token": None}

    def variables(self) -> dict[str, Any]:
        return {"next_token": self.position.get("token")}

    def params(self) -> dict[str, Any]:
        token = self.position.get("token")
        return {self.settings.token_param: token} if token is not None else {}

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        token = jmespath.search(str(self.settings.next_token_path), body)
        if token in (None, "") or self._more(body) is False:
            return False
        if token == self.position.get("token"):
            raise PaginationLoop(f"the API returned the same next-page token twice ({token!r})")
        self.position = {"token": token}
        return True


class NextUrlPaginator(Paginator):
    """style = "next_url": the answer carries the next page's URL."""

    def start(self) -> dict[str, Any]:
        return {"url": None}

    def url(self) -> str | None:
        value = self.position.get("url")
        return str(value) if value else None

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        following = jmespath.search(str(self.settings.next_url_path), body)
        return self._follow(following, response, body)

    def _follow(self, following: Any, response: requests.Response, body: Any) -> bool:
        if not following or self._more(body) is False:
            return False
        absolute = requests.compat.urljoin(response.url, str(following))
        if absolute == self.position.get("url"):
            raise PaginationLoop("the API returned the same next-page URL twice")
        self.position = {"url": absolute}
        return True


class LinkHeaderPaginator(NextUrlPaginator):
    """style = "link_header": the Link header's rel="next" URL (RFC 8288)."""

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        following = (response.links.get("next") or {}).get("url")
        return self._follow(following, response, body)


class OffsetPaginator(Paginator):
    """style = "offset": skip `offset` records, `limit` at a time."""

    def start(self) -> dict[str, Any]:
        return {"offset": 0}

    def variables(self) -> dict[str, Any]:
        return {"offset": self.position["offset"], "limit": self.settings.limit}

    def params(self) -> dict[str, Any]:
        s = self.settings
        return {s.offset_param: self.position["offset"], s.limit_param: s.limit}

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        following = int(self.position["offset"]) + self.settings.limit
        more = self._more(body)
        if more is None and self.settings.total_path is not None:
            total = jmespath.search(self.settings.total_path, body)
            more = isinstance(total, int) and following < total
        if more is None:
            more = count >= self.settings.limit
        if not more or count == 0:
            return False
        self.position = {"offset": following}
        return True


class PageNumberPaginator(Paginator):
    """style = "page_number": ask for page 1, 2, 3... until one comes back short or empty."""

    def start(self) -> dict[str, Any]:
        return {"page": self.settings.first_page}

    def variables(self) -> dict[str, Any]:
        return {"page": self.position["page"], "page_size": self.settings.page_size}

    def params(self) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {s.page_param: self.position["page"]}
        if s.page_size_param is not None:
            out[s.page_size_param] = s.page_size
        return out

    def advance(self, response: requests.Response, body: Any, count: int) -> bool:
        more = self._more(body)
        if more is None:
            size = self.settings.page_size
            more = count > 0 and (size is None or count >= size)
        if not more or count == 0:
            return False
        self.position = {"page": int(self.position["page"]) + 1}
        return True


STYLES: dict[str, type[Paginator]] = {
    "none": SinglePage,
    "cursor": CursorPaginator,
    "next_url": NextUrlPaginator,
    "link_header": LinkHeaderPaginator,
    "offset": OffsetPaginator,
    "page_number": PageNumberPaginator,
}


def make_paginator(settings: PaginationSettings, position: dict[str, Any] | None) -> Paginator:
    """The paginator for a style, at a saved position (None: the first page)."""
    return STYLES[settings.style](settings, position)
