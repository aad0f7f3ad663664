"""Incremental issue search: the cursor, its windows, and the two ways Jira pages results.

A read is a *pass* over one window of `updated` values, `[lower, upper)`, in epoch milliseconds
(JQL reads a bare number as epoch ms whatever the API user's time zone, unlike a literal date,
which it reads in the user's zone to the minute). Bounds are whole minutes, so they mean the same
under either reading. `upper` is the last minute that has settled (now minus `settle_lag`): search
is eventually consistent, so the cursor never claims a minute Jira may still be indexing.
`lower` reaches back `overlap` before the settled point; what that re-reads is absorbed by the
engine's content-hash upsert.

Within a pass, each page's cursor keeps the window and the position of the next page (Cloud's
nextPageToken, or Data Center's startAt), so a resumed read continues the same pass. Only the
last page moves `settled_ms` to the pass's upper bound.

Data Center pages by offset over a live result: when issues leave the window during a pass
(they were updated, so their `updated` moved past `upper`), later issues shift back by as many
places, so the page just served started that many places too far on. `total` drops by the same
number, and the next page starts that many places before the page just served, so no issue is
skipped (about one page is read twice; the repeats are absorbed downstream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MINUTE_MS = 60_000
ORDER = "ORDER BY updated ASC, key ASC"  # in JQL, id is an alias of the issue key field
CENSUS_ORDER = "ORDER BY key ASC"
POST_ABOVE_FIELDS = 40  # a long field list would overflow the URL of a GET

#: Sends one search: (path under rest/api/N, parameters, as POST with a JSON body?) -> answer.
Fetch = Callable[[str, dict[str, Any], bool], Any]


class IssueCursor(BaseModel):
    """Where the issue stream stands; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    settled_ms: int | None = Field(
        default=None, description="Every issue updated before this instant (epoch ms) is read."
    )
    pass_lower_ms: int | None = Field(default=None, description="Window of the pass under way.")
    pass_upper_ms: int | None = None
    page_token: str | None = Field(default=None, description="Cloud: the next page of the pass.")
    start_at: int = Field(default=0, description="Data Center: offset of the next page.")
    total: int | None = Field(default=None, description="Data Center: result size last seen.")

    @property
    def in_pass(self) -> bool:
        return self.pass_upper_ms is not None


@dataclass(frozen=True)
class Window:
    """`updated` in [lower_ms, upper_ms); lower None: from the beginning."""

    lower_ms: int | None
    upper_ms: int


def floor_minute(ms: int) -> int:
    return ms - ms % MINUTE_MS


def next_window(
    cursor: IssueCursor,
    *,
    now_ms: int,
    overlap_ms: int,
    settle_ms: int,
    start_ms: int | None,
) -> Window | None:
    """The window of a new pass, or None when no minute has settled since the last one."""
    upper = floor_minute(now_ms - settle_ms)
    if cursor.settled_ms is None:
        lower = floor_minute(start_ms) if start_ms is not None else None
        if lower is not None and upper <= lower:
            return None
        return Window(lower, upper)
    if upper <= cursor.settled_ms:
        return None
    return Window(floor_minute(cursor.settled_ms) - overlap_ms, upper)


def scope_jql(projects: Sequence[str], jql: str | None) -> str:
    """The configured scope as one JQL condition."""
    parts: list[str] = []
    if projects:
        parts.append("project in (" + ", ".join(f'"{key}"' for key in projects) + ")")
    if jql:
        parts.append(f"({jql})")
    return " AND ".join(parts)


def window_jql(scope: str, window: Window) -> str:
    clauses = [f"({scope})"]
    if window.lower_ms is not None:
        clauses.append(f"updated >= {window.lower_ms}")
    clauses.append(f"updated < {window.upper_ms}")
    return " AND ".join(clauses) + " " + ORDER


@dataclass(frozen=True)
class Position:
    """Where the next page of a search starts."""

    token: str | None = None
    start_at: int = 0
    total: int | None = None


@dataclass(frozen=True)
class SearchPage:
    issues: list[dict[str, Any]]
    next: Position | None  # None: this was the last page


class UnexpectedAnswer(ValueError):
    """The search answer lacks what the API documents."""


def cloud_page(
    fetch: Fetch, jql: str, fields: Sequence[str], size: int, position: Position | None
) -> SearchPage:
    """One page of search/jql; follows nextPageToken, there is no total.

    Field ids go to Jira as they are: `id` asks for ids only, which Jira serves in pages of up to
    5,000 (any real field caps a page at 100).
    """
    token = position.token if position else None
    post = len(fields) > POST_ABOVE_FIELDS
    params: dict[str, Any] = {
        "jql": jql,
        "maxResults": size,
        "fields": list(fields) if post else ",".join(fields),
    }
    if token:
        params["nextPageToken"] = token
    body = fetch("search/jql", params, post)
    issues = _issues(body)
    following = body.get("nextPageToken")
    if body.get("isLast") is True or not following:
        return SearchPage(issues, None)
    if following == token:
        raise UnexpectedAnswer("search/jql answered the same nextPageToken twice")
    return SearchPage(issues, Position(token=str(following)))


def datacenter_page(
    fetch: Fetch, jql: str, fields: Sequence[str], size: int, position: Position | None
) -> SearchPage:
    """One page of search with startAt/total, guarded against offset shifts."""
    start = position.start_at if position else 0
    previous_total = position.total if position else None
    post = len(fields) > POST_ABOVE_FIELDS
    params: dict[str, Any] = {
        "jql": jql,
        "startAt": start,
        "maxResults": size,
        "fields": list(fields) if post else ",".join(fields),
    }
    body = fetch("search", params, post)
    issues = _issues(body)
    total = body.get("total")
    if not isinstance(total, int):
        raise UnexpectedAnswer("search answered without a total")
    shrink = max(0, previous_total - total) if previous_total is not None else 0
    # Issues that left before `start` moved this page `shrink` places on: step back over them.
    following = max(0, start - shrink) if shrink else start + len(issues)
    if not issues or following >= total:
        return SearchPage(issues, None)
    return SearchPage(issues, Position(start_at=following, total=total))


def _issues(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("issues"), list):
        raise UnexpectedAnswer("search answered without an issues list")
    return [i for i in body["issues"] if isinstance(i, dict) and "id" in i]


def flatten(issue: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """An issue as a record: its fields by id beside id, key and self, plus name aliases."""
    record: dict[str, Any] = dict(issue.get("fields") or {})
    for name, field_id in aliases.items():
        record[name] = record.get(field_id)
    record["id"] = str(issue["id"])
    record["key"] = issue.get("key")
    record["self"] = issue.get("self")
    return record
