"""Settings of a `rest` connector instance: the whole API description lives here.

Everything is checked when the configuration loads (`pmsync check-config`), before any
request: JMESPath expressions compile, the pagination style exists and gets only its own
options, placeholders are well formed and name variables that the endpoint provides, no
parameter is sent by two settings, cursor formats fit the cursor type, rate limits fit the
connector's total (the checks across settings are in checks.py). Errors name the TOML path and
suggest the closest valid name.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from pmsync.connectors.base import ConnectorSettings
from pmsync.connectors.rest.checks import (
    SendIn,
    check_headers,
    check_jmespath,
    check_limits,
    check_parameter_names,
    check_placeholders,
    choice,
    config_error,
)
from pmsync.connectors.rest.cursor import CursorType, parse_value
from pmsync.durations import Duration

AuthType = Literal["none", "header", "bearer", "basic", "query"]
Style = Literal["none", "cursor", "next_url", "offset", "page_number", "link_header"]

STOP_FLAGS = frozenset({"has_more_path", "last_page_path"})
STYLE_OPTIONS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "cursor": frozenset({"next_token_path", "token_param", "send_in"}) | STOP_FLAGS,
    "next_url": frozenset({"next_url_path"}) | STOP_FLAGS,
    "offset": frozenset({"offset_param", "limit_param", "limit", "total_path", "send_in"})
    | STOP_FLAGS,
    "page_number": frozenset(
        {"page_param", "first_page", "page_size_param", "page_size", "send_in"}
    )
    | STOP_FLAGS,
    "link_header": STOP_FLAGS,
}
#: incremental.format: how the cursor value is sent (a strftime pattern is also accepted).
CURSOR_FORMATS = {
    "as_read": "the value exactly as the API wrote it in the records",
    "epoch": "Unix time in whole seconds (1714557600)",
    "epoch_ms": "Unix time in milliseconds (1714557600000)",
    "iso": "ISO 8601 in UTC (2024-05-01T10:00:00Z; a date cursor: 2024-05-01)",
}
AUTH_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # type: (required, allowed)
    "none": (frozenset(), frozenset()),
    "bearer": (frozenset({"token"}), frozenset({"token"})),
    "header": (frozenset({"name", "token"}), frozenset({"name", "token", "prefix"})),
    "query": (frozenset({"name", "token"}), frozenset({"name", "token"})),
    "basic": (frozenset({"username", "password"}), frozenset({"username", "password"})),
}
CURSOR_TYPES = ("datetime", "date", "integer", "number", "string")
STREAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class AuthSettings(BaseModel):
    """How requests authenticate; secrets are references ({ env = ... } and friends)."""

    model_config = ConfigDict(extra="forbid")

    type: AuthType = Field(
        default="none",
        description="none, bearer (Authorization: Bearer <token>), header (<name>: "
        "[prefix ]<token>), query (?<name>=<token>) or basic (username and password).",
    )
    name: str | None = Field(default=None, description="Header or query parameter name.")
    prefix: str | None = Field(default=None, description="header: text before the token.")
    token: SecretStr | None = Field(default=None, description="The key or token (a reference).")
    username: str | None = Field(default=None, description="basic: the user name.")
    password: SecretStr | None = Field(default=None, description="basic: password (a reference).")

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        return choice(value, AUTH_OPTIONS, "auth type")

    @model_validator(mode="after")
    def _options_fit_type(self) -> AuthSettings:
        required, allowed = AUTH_OPTIONS[self.type]
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        given.discard("type")
        missing = sorted(required - given)
        if missing:
            raise config_error(f"auth type '{self.type}' needs {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            raise config_error(
                f"{', '.join(extra)} does not apply to auth type '{self.type}' "
                f"(its options: {', '.join(sorted(allowed)) or 'none'})"
            )
        return self


class PaginationSettings(BaseModel):
    """How the next page is asked for; each style takes only its own options."""

    model_config = ConfigDict(extra="forbid")

    style: Style = Field(
        default="none",
        description="none (one request), cursor (a next-page token from the answer), "
        "next_url (a next-page URL from the answer), offset, page_number, or link_header "
        '(the Link: <...>; rel="next" header).',
    )
    next_token_path: str | None = Field(
        default=None, description="cursor: JMESPath to the next-page token in the answer."
    )
    token_param: str = Field(default="cursor", description="cursor: parameter carrying it.")
    next_url_path: str | None = Field(
        default=None, description="next_url: JMESPath to the next page's URL in the answer."
    )
    offset_param: str = Field(default="offset", description="offset: the offset parameter.")
    limit_param: str = Field(default="limit", description="offset: the page-size parameter.")
    limit: int = Field(default=100, ge=1, description="offset: records per page.")
    page_param: str = Field(default="page", description="page_number: the page parameter.")
    first_page: int = Field(default=1, ge=0, description="page_number: number of the first page.")
    page_size_param: str | None = Field(
        default=None, description="page_number: the page-size parameter, if the API has one."
    )
    page_size: int | None = Field(default=None, ge=1, description="page_number: page size.")
    has_more_path: str | None = Field(
        default=None,
        description="JMESPath to a 'more pages' flag in the answer (hasMore): false ends the read.",
    )
    last_page_path: str | None = Field(
        default=None,
        description="JMESPath to a 'last page' flag in the answer (end_of_stream): true ends "
        "the read, even when the answer still names a next page.",
    )
    total_path: str | None = Field(
        default=None, description="offset: JMESPath to the total number of records."
    )
    send_in: SendIn = Field(
        default="query",
        description="Where the pagination parameters go: query string, top level of the JSON "
        "body, or none (only through {{placeholders}}).",
    )

    @field_validator("style", mode="before")
    @classmethod
    def _known_style(cls, value: Any) -> Any:
        return choice(value, STYLE_OPTIONS, "pagination style")

    @field_validator(
        "next_token_path", "next_url_path", "has_more_path", "last_page_path", "total_path"
    )
    @classmethod
    def _paths_compile(cls, value: str | None, info: Any) -> str | None:
        return check_jmespath(value, f"pagination.{info.field_name}")

    @model_validator(mode="after")
    def _options_fit_style(self) -> PaginationSettings:
        allowed = STYLE_OPTIONS[self.style]
        extra = sorted(self.model_fields_set - allowed - {"style"})
        if extra:
            raise config_error(
                f"{', '.join(extra)} does not apply to pagination style '{self.style}' "
                f"(its options: {', '.join(sorted(allowed)) or 'none'})"
            )
        if self.style == "cursor" and self.next_token_path is None:
            raise config_error("pagination style 'cursor' needs next_token_path")
        if self.style == "next_url" and self.next_url_path is None:
            raise config_error("pagination style 'next_url' needs next_url_path")
        if (self.page_size is None) != (self.page_size_param is None):
            raise config_error("set page_size and page_size_param together")
        if self.has_more_path is not None and self.last_page_path is not None:
            raise config_error(
                "set has_more_path (a 'more pages' flag) or last_page_path (a 'last page' "
                "flag), not both"
            )
        return self

    def sent_parameters(self) -> dict[str, str]:
        """Parameter name -> the option naming it, for the parameters this style sends itself."""
        if self.send_in == "none":
            return {}
        names = {
            "cursor": ("token_param",),
            "offset": ("offset_param", "limit_param"),
            "page_number": ("page_param", "page_size_param"),
        }.get(self.style, ())
        found = {getattr(self, option): option for option in names}
        found.pop(None, None)
        return found


class IncrementalSettings(BaseModel):
    """Read only what changed: the largest cursor_field seen is sent as the next `since`."""

    model_config = ConfigDict(extra="forbid")

    cursor_field: str = Field(description="JMESPath to the record's change marker (updated_at).")
    type: CursorType = Field(
        default="datetime",
        description="How cursor values compare: datetime (ISO 8601 or epoch), date, integer, "
        "number or string.",
    )
    param: str | None = Field(
        default=None, description="Parameter that carries the value (or use {{since}})."
    )
    send_in: SendIn = Field(default="query", description="Where `param` goes: query or body.")
    format: str = Field(
        default="as_read",
        description="How the value is sent (param and {{since}}), for datetime and date "
        "cursors: as_read, epoch (Unix seconds), epoch_ms, iso, or a strftime pattern such as "
        "'%Y-%m-%d %H:%M'.",
    )
    initial_value: str | int | float | None = Field(
        default=None,
        description="The value of the first read, sent as written (with a format: read as the "
        "cursor type, or as epoch seconds for a datetime, then formatted); default: no filter.",
    )
    lookback: Duration | None = Field(
        default=None,
        description="Re-read this far before the cursor (datetime and date cursors), for "
        "late-arriving records; re-read records replace their stored copy.",
    )

    @field_validator("cursor_field")
    @classmethod
    def _path_compiles(cls, value: str) -> str:
        return check_jmespath(value, "incremental.cursor_field") or value

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        return choice(value, dict.fromkeys(CURSOR_TYPES), "cursor type")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if "%" in value:
            return value
        return str(choice(value, CURSOR_FORMATS, "cursor format"))

    @model_validator(mode="after")
    def _options_fit_type(self) -> IncrementalSettings:
        if self.lookback is not None and self.type not in ("datetime", "date"):
            raise config_error("lookback applies to datetime and date cursors only")
        if self.format != "as_read" and self.type not in ("datetime", "date"):
            raise config_error(
                f"format applies to datetime and date cursors only ({self.type} values are "
                "sent as read)"
            )
        formatted = self.format != "as_read" and self.initial_value is not None
        if formatted and parse_value(self.type, self.initial_value) is None:
            raise config_error(
                f"initial_value {self.initial_value!r} cannot be read as a {self.type}, so it "
                f"cannot be sent as {self.format}"
            )
        return self


class EndpointSettings(BaseModel):
    """One stream: an endpoint, how to find its records and how to page through them."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path under base_url (/api/items), or an absolute https URL.")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters; values may use {{placeholders}}."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers (never secrets: those go under auth)."
    )
    body: dict[str, Any] | None = Field(
        default=None, description="JSON body (POST); values may use {{placeholders}}."
    )
    records_path: str = Field(
        description="JMESPath to the list of records in the answer, e.g. 'results' or 'data.items'."
    )
    columns_path: str | None = Field(
        default=None,
        description="When records are rows of values, JMESPath to their column names.",
    )
    key: str = Field(default="id", description="JMESPath to a record's unique key.")
    pagination: PaginationSettings = Field(default_factory=PaginationSettings)
    incremental: IncrementalSettings | None = None
    deleted_when: str | None = Field(
        default=None,
        description="JMESPath predicate marking a record deleted at the source, e.g. "
        "\"status == 'deleted'\" or 'deleted_at': such records are stored as tombstones.",
    )
    sweep: Literal["none", "census"] | None = Field(
        default=None,
        description="census: find records the source no longer returns and tombstone them. "
        "An endpoint without incremental is read in full each cycle, so each complete read is "
        "the census (the default); with incremental, a periodic sweep reads the endpoint from "
        "the start. none: never tombstone what is merely missing.",
    )
    requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="This endpoint's own limit, counted within the connector's "
        "requests_per_minute.",
    )
    rate_limit_group: str | None = Field(
        default=None,
        description="A limit of the connector's rate_limit_groups that this endpoint shares "
        "with the other endpoints naming it (Zendesk: 10 a minute across incremental exports).",
    )
    description: str = ""

    @property
    def census_by_read(self) -> bool:
        """Each complete read returns every live record, so it is the census."""
        return self.incremental is None and self.sweep != "none"

    @property
    def census_by_sweep(self) -> bool:
        """A separate id sweep re-reads the endpoint from the start."""
        return self.incremental is not None and self.sweep == "census"

    @field_validator("records_path", "columns_path", "key", "deleted_when")
    @classmethod
    def _paths_compile(cls, value: str | None, info: Any) -> str | None:
        return check_jmespath(value, str(info.field_name))

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith(("/", "https://", "http://")):
            raise config_error("path must start with / (under base_url) or be an absolute URL")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> EndpointSettings:
        if self.body is not None and self.method == "GET":
            raise config_error('a body needs method = "POST"')
        sends_in_body = self.pagination.style != "none" and self.pagination.send_in == "body"
        if self.incremental and self.incremental.param and self.incremental.send_in == "body":
            sends_in_body = True
        if sends_in_body and self.method != "POST":
            raise config_error('send_in = "body" needs method = "POST"')
        check_placeholders(self)
        check_parameter_names(self)
        return self


class RestSettings(ConnectorSettings):
    """`[connectors.NAME]` with `type = "rest"`: any JSON API, described in configuration."""

    type: Literal["rest"] = "rest"
    base_url: str = Field(description="The API root, e.g. https://us.posthog.com.")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent with every request (never secrets)."
    )
    requests_per_minute: int = Field(
        default=60,
        ge=1,
        description="Polite pacing before the API answers 429: the connector's total, which "
        "every endpoint's requests count against.",
    )
    rate_limit_groups: dict[str, int] = Field(
        default_factory=dict,
        description="Named per-minute limits that several endpoints share (rate_limit_group), "
        "within the total: e.g. { exports = 10 }.",
    )
    check_path: str | None = Field(
        default=None,
        description="A cheap GET path for `pmsync check`; default: the first endpoint's first "
        "page.",
    )
    endpoints: dict[str, EndpointSettings] = Field(
        min_length=1, description="Stream name = endpoint; each stream is mapped on its own."
    )

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("endpoints")
    @classmethod
    def _stream_names(cls, value: dict[str, EndpointSettings]) -> dict[str, EndpointSettings]:
        for name in value:
            if not STREAM_NAME.match(name):
                raise config_error(
                    f"endpoint name '{name}' must be letters, digits, _ or - (it names a stream)"
                )
        return value

    @model_validator(mode="after")
    def _limits_fit(self) -> RestSettings:
        check_limits(self)
        return self
