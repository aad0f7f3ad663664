"""Checks of a `rest` configuration, run when it loads (`pmsync check-config`).

Single values (a JMESPath that must compile, a header that must not carry a credential, a name
from a list) and the checks across settings that no single field can make: placeholders, the
parameters several settings would send, rate limits against the connector's total. Every
message names the setting and, where it can, the closest valid name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import PydanticCustomError

from pmsync.connectors.rest.templates import (
    STYLE_VARIABLES,
    VARIABLES,
    malformed_placeholders,
    placeholders,
)
from pmsync.expressions import ExpressionError, compile_expression
from pmsync.validation import did_you_mean

if TYPE_CHECKING:
    from pmsync.connectors.rest.settings import EndpointSettings, RestSettings

SendIn = Literal["query", "body", "none"]
SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


def config_error(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as written (no 'Value error,' prefix)."""
    return PydanticCustomError("rest_config", message)


def check_jmespath(expression: str | None, what: str) -> str | None:
    """Compile a JMESPath expression now, so a typo (or an unknown function) is found before
    the first request."""
    if expression is None:
        return None
    if not expression.strip():
        raise config_error(f"{what} is empty; write a JMESPath expression such as 'results'")
    try:
        compile_expression(expression)
    except ExpressionError as detail:
        raise config_error(
            f"{what} '{expression}' is not a valid JMESPath expression ({detail})"
        ) from None
    return expression


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Plain headers are written in the file, so they must not carry credentials."""
    for name in headers:
        if SECRET_HEADER.search(name):
            raise config_error(
                f"header '{name}' looks like a credential; set it under auth (type = \"header\", "
                f'name = "{name}", token = {{ env = "..." }}) so it stays a secret reference'
            )
    return headers


def choice(value: Any, choices: dict[str, Any], what: str) -> Any:
    """`value` if it is one of `choices`, else an error suggesting the closest."""
    if isinstance(value, str) and value not in choices:
        raise config_error(
            f"unknown {what} '{value}'{did_you_mean(value, choices)} (known: {', '.join(choices)})"
        )
    return value


def check_placeholders(endpoint: EndpointSettings) -> None:
    """Every {{placeholder}} is well formed and names a variable this endpoint provides."""
    templated = (endpoint.path, endpoint.params, endpoint.body)
    for bad in sorted(set().union(*(malformed_placeholders(t) for t in templated))):
        raise config_error(
            f"malformed placeholder '{bad}': write {{{{name}}}} with a bare name; a format "
            "is not written in the placeholder (for the incremental value set "
            'incremental.format, e.g. "epoch")'
        )
    available = set(STYLE_VARIABLES.get(endpoint.pagination.style, ()))
    if endpoint.incremental is not None:
        available.add("since")
    used = set().union(*(placeholders(t) for t in templated))
    for name in sorted(used - available):
        if name in VARIABLES:
            raise config_error(f"{{{{{name}}}}} is not available here: it is {VARIABLES[name]}")
        raise config_error(
            f"unknown placeholder {{{{{name}}}}}{did_you_mean(name, VARIABLES)} "
            f"(available here: {', '.join(sorted(available)) or 'none'})"
        )
    if "since" in used and endpoint.incremental and endpoint.incremental.initial_value is None:
        raise config_error(
            "{{since}} is used but incremental.initial_value is not set: the first read "
            "would have no value to send"
        )


def check_parameter_names(endpoint: EndpointSettings) -> None:
    """No parameter is sent twice by different settings, where one would silently win.

    One sharing is meant: an API whose start parameter is also its page token (a `since_id`
    that the answer's last id continues) sends the incremental value on the first page and the
    token on the later ones, so incremental.param may equal the cursor style's token_param.
    """
    pagination, incremental = endpoint.pagination, endpoint.incremental
    paging = {
        (name, pagination.send_in): f"pagination.{option}"
        for name, option in pagination.sent_parameters().items()
    }
    if incremental is not None and incremental.param and incremental.send_in != "none":
        where = (incremental.param, incremental.send_in)
        shared_token = pagination.style == "cursor" and incremental.param == pagination.token_param
        if where in paging and not shared_token:
            raise config_error(
                f"incremental.param '{incremental.param}' is also {paging[where]}: one would "
                "overwrite the other on every page"
            )
        paging.setdefault(where, "incremental.param")
    fixed: list[tuple[str, SendIn, str]] = [
        (name, "query", f"params.{name}") for name in endpoint.params
    ]
    fixed += [(name, "body", f"body.{name}") for name in endpoint.body or {}]
    for name, location, setting in fixed:
        other = paging.get((name, location))
        if other is not None:
            raise config_error(
                f"{setting} is also sent as {other}, which would overwrite it; remove it from "
                f"{setting.split('.')[0]}"
            )


def check_limits(settings: RestSettings) -> None:
    """Endpoint and group limits name known groups and fit inside the connector's total."""
    total = settings.requests_per_minute
    for group, limit in settings.rate_limit_groups.items():
        _fits(f"rate_limit_groups.{group}", limit, total)
    used: set[str] = set()
    for name, endpoint in settings.endpoints.items():
        if endpoint.requests_per_minute is not None:
            _fits(f"endpoints.{name}.requests_per_minute", endpoint.requests_per_minute, total)
        shared = endpoint.rate_limit_group
        if shared is not None and shared not in settings.rate_limit_groups:
            known = ", ".join(settings.rate_limit_groups) or "none; add [rate_limit_groups]"
            raise config_error(
                f"endpoints.{name}.rate_limit_group: unknown group '{shared}'"
                f"{did_you_mean(shared, settings.rate_limit_groups)} (groups: {known})"
            )
        used.add(shared or "")
    for group in sorted(set(settings.rate_limit_groups) - used):
        raise config_error(f"rate_limit_groups.{group} is named by no endpoint's rate_limit_group")


def _fits(setting: str, limit: int, total: int) -> None:
    if limit < 1:
        raise config_error(f"{setting} must be at least 1 request a minute")
    if limit > total:
        raise config_error(
            f"{setting} = {limit} is more than the connector's requests_per_minute = {total}, "
            "which every request counts against"
        )
