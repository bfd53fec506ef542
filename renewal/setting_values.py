"""Numbers in app settings, one parser for all: a typo or a value out of range is refused with a message naming
the setting, its value and what it must be, never silently replaced by the default."""

from __future__ import annotations

import math
from collections.abc import Mapping

from renewal.errors import ConfigError

MAX_TIMEOUT_SECONDS = 300.0  # the SDK's own default: a longer deadline is no deadline


def number_setting(
    env: Mapping[str, str],
    key: str,
    default: float,
    *,
    low: float,
    high: float | None = None,
    above_low: bool = False,
    unit: str = "",
    error: type[ConfigError] = ConfigError,
) -> float:
    """``key`` as a number from ``low`` (above it with ``above_low``) to ``high``, or ``default`` when unset."""
    return _parse(env, key, default, float, low, high, above_low, unit, error)


def whole_number_setting(
    env: Mapping[str, str],
    key: str,
    default: int,
    *,
    low: int,
    high: int | None = None,
    unit: str = "",
    error: type[ConfigError] = ConfigError,
) -> int:
    """``key`` as a whole number from ``low`` to ``high``, or ``default`` when unset."""
    return int(_parse(env, key, default, int, low, high, False, unit, error))


def seconds_setting(env: Mapping[str, str], key: str, default: float, error: type[ConfigError] = ConfigError) -> float:
    """A timeout in seconds: more than 0 and at most ``MAX_TIMEOUT_SECONDS``, or ``default`` when unset."""
    return number_setting(
        env, key, default, low=0, high=MAX_TIMEOUT_SECONDS, above_low=True, unit="seconds", error=error
    )


def _parse(
    env: Mapping[str, str],
    key: str,
    default: float,
    kind: type[int] | type[float],
    low: float,
    high: float | None,
    above_low: bool,
    unit: str,
    error: type[ConfigError],
) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    of_unit = f" of {unit}" if unit else ""
    try:
        value = kind(raw)
    except ValueError:
        raise error(f"{key}={raw!r} is not a {'whole ' if kind is int else ''}number{of_unit}") from None
    in_range = (value > low if above_low else value >= low) and (high is None or value <= high)
    if not (math.isfinite(value) and in_range):
        bounds = f"more than {low:g}" if above_low else f"at least {low:g}"
        if high is not None:
            bounds += f" and at most {high:g}"
        raise error(f"{key}={raw!r} must be {bounds}{' ' + unit if unit else ''}")
    return value
