"""Human durations in configuration files: 90, "90s", "5m", "1h30m", "1d"."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LONGEST = 100 * 365.25 * 86400.0


def parse_duration(value: Any) -> Any:
    """Turn seconds or a "1h30m"-style string into a timedelta; leave other values to pydantic."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _seconds(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _PART.sub("", text) == "":
            return _seconds(sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)))
        raise ValueError(f"'{value}' is not a duration; write seconds or e.g. '90s', '5m', '1h30m'")
    return value


def _seconds(seconds: float) -> timedelta:
    """A timedelta, or a ValueError pydantic reports (not an OverflowError, a traceback) for
    spans no clock reaches: more than a hundred years, infinity, NaN."""
    if not math.isfinite(seconds) or abs(seconds) > _LONGEST:
        raise ValueError("is not a duration pmsync can wait: at most 100 years")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
