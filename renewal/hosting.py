"""Where certlc runs, for the adapters that must behave differently in Azure.

In Azure Functions (Flex Consumption) the package is read-only and the temp folder belongs to one
instance, so nothing written to local disk lasts: an adapter must not keep state there, nor make a
key it cannot keep. The platform sets ``WEBSITE_INSTANCE_ID`` and ``FUNCTIONS_WORKER_RUNTIME``; the
local stack sets ``FUNCTIONS_WORKER_RUNTIME`` too (from local.settings.json) but also
``CERTLC_LOCAL_TOKEN``, which is refused for anything but the local emulators. The on-premises worker
sets neither platform setting.
"""

from __future__ import annotations

from collections.abc import Mapping

AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "FUNCTIONS_WORKER_RUNTIME")
LOCAL_STACK_MARKER = "CERTLC_LOCAL_TOKEN"
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("  # how a setting starts that the platform has not resolved to its secret


def in_azure(env: Mapping[str, str]) -> bool:
    """True when the app settings are Azure Functions' and not the local stack's."""
    if env.get(LOCAL_STACK_MARKER, "").strip():
        return False
    return any(env.get(key, "").strip() for key in AZURE_MARKERS)
