"""The environment a child ``certlc`` process gets in the tests: the user's shell, not this process's settings."""

from __future__ import annotations

import os

SETTING_PREFIXES = ("CERTLC_", "Certlc", "AzureWebJobs")
SESSION_STACK = "CERTLC_STACK_DIR"  # tests/conftest.py points it at the session's own folder


def without_certlc_settings() -> dict[str, str]:
    """``os.environ`` without certlc's app settings, keeping the test session's stack folder, so a child never
    finds the developer's own local stack."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES) or k == SESSION_STACK}
