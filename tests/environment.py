"""The environment a child ``certlc`` process gets in the tests: the user's shell, not this process's settings."""

from __future__ import annotations

import os

SETTING_PREFIXES = ("CERTLC_", "Certlc", "AzureWebJobs")
SESSION_FOLDERS = ("CERTLC_STACK_DIR", "CERTLC_DEMO_DIR")  # tests/conftest.py points them at the session's own


def without_certlc_settings() -> dict[str, str]:
    """``os.environ`` without certlc's app settings, keeping the test session's stack folder, so a child never
    finds the developer's own local stack or demo."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES) or k in SESSION_FOLDERS}
