"""The one base class for settings an operator has to fix: the CLI prints these as one line."""


class ConfigError(ValueError):
    """A setting is missing, malformed or points somewhere it must not; the message names it."""
