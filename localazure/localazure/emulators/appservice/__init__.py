"""An App Service emulator for ``certlc doctor``'s deployment checks.

The ARM side serves the two Microsoft.Web operations the doctor reads (WebApps_ListFunctions and
WebApps_GetAppSettingsKeyVaultReferences) in the shapes of the REST specification, every answer checked against it
(``schemas.py``), behind a bearer token with RBAC roles, over HTTPS on loopback. What it serves is decided by real
code, never by the caller: the functions are those the local host's indexing finds in the published folder's
function_app.py (``indexing.py``), and each Key Vault reference's status is what the Key Vault emulator answered the
app's identity (``references.py``).
"""

from .emulator import AppServiceEmulator

__all__ = ["AppServiceEmulator"]
