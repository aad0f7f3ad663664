"""Human durations in configuration files: 90, "90s", "5m", "1h30m", "1d"."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """Turn seconds or a "1h30m"-style string into a timedelta; leave other values to pydantic."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _PART.sub("", text) == "":
            total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=total)
        raise ValueError(f"'{value}' is not a duration; write seconds or e.g. '90s', '5m', '1h30m'")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
