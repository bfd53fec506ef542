"""An emulator of the Azure services that serve Key Vault certificates: Application Gateway, Front Door (Standard and
Premium), App Service, API Management and Container Apps.

The ARM side serves what certlc's discovery lists and its rollout writes (``arm.py``), in the shapes and api-versions
of the REST specifications the official management SDKs send (``schemas.py`` names each file), behind a bearer token
with RBAC roles, over HTTPS on loopback, so the unmodified SDKs reach it with a custom ``base_url``. The TLS front
(``tlsfront.py``) answers a handshake for each bound host name with the certificate that resource references, read
from the Key Vault emulator with the service's identity and refreshed as the service polls Key Vault
(``serving.py``): what a handshake with SNI gets is what the Azure service would serve.
"""

from .emulator import ConsumersEmulator, vault_id

__all__ = ["ConsumersEmulator", "vault_id"]
