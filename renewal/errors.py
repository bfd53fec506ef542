"""The one base class for settings an operator has to fix (the CLI prints these as one line), and the walk
through what an exception wraps that deciding what went wrong on the wire needs."""

from collections.abc import Iterator


class ConfigError(ValueError):
    """A setting is missing, malformed or points somewhere it must not; the message names it."""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: cause, context, exception arguments, urllib3's ``reason`` and the
    Azure SDKs' ``inner_exception``, each once."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(current.args)
        stack.extend(getattr(current, name, None) for name in ("reason", "inner_exception", "__cause__", "__context__"))
