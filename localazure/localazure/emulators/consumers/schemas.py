"""The resource types the emulator serves, their api-versions, and what a write body may carry.

Every shape rests on Azure/azure-rest-api-specs ``specification/SERVICE/resource-manager/NAMESPACE/stable/VERSION``,
at the api-version the official management SDK named sends by default:

- Microsoft.Network/applicationGateways, 2025-05-01 (azure-mgmt-network 30): ``network/.../2025-05-01/
  applicationGateway.json``: ``ApplicationGateway``; ``ApplicationGatewaySslCertificate`` (``keyVaultSecretId``);
  ``ApplicationGatewayHttpListener`` (``hostName``, ``hostNames``, ``sslCertificate``, a SubResource).
- Microsoft.Cdn/profiles, profiles/secrets, profiles/customDomains, 2024-02-01 (azure-mgmt-cdn 13): ``cdn/.../
  2024-02-01``: ``Profile`` (``sku.name``); ``Secret`` with ``CustomerCertificateParameters`` (``type``,
  ``secretSource.id``, ``secretVersion``, ``useLatestVersion``); ``AFDDomain`` (``hostName``, ``tlsSettings``, an
  ``AFDDomainHttpsParameters``: ``certificateType``, ``secret.id``). Secrets have no PATCH (Secrets_Create, _Get,
  _Delete, _ListByProfile only); custom domains have AFDCustomDomains_Update.
- Microsoft.Web/certificates and sites, 2024-04-01 (azure-mgmt-web 8): ``Certificates.json``: ``Certificate``
  (``keyVaultId``, a vault's resource id; ``keyVaultSecretName``; read-only ``thumbprint``); ``WebApps.json``:
  ``Site`` (``hostNameSslStates[]``: ``name``, ``sslState``, ``thumbprint``).
- Microsoft.ApiManagement/service, 2024-05-01 (azure-mgmt-apimanagement 5): ``apimdeployment.json``:
  ``ApiManagementServiceResource`` (required ``publisherEmail``, ``publisherName``, ``sku``, ``location``);
  ``HostnameConfiguration`` (required ``type``, ``hostName``; ``keyVaultId``, a secret URL); ApiManagementService_Update
  is a PATCH.
- Microsoft.App/managedEnvironments, managedEnvironments/certificates, containerApps, 2025-01-01
  (azure-mgmt-appcontainers 3): ``ManagedEnvironments.json`` with ``CommonDefinitions.json``: ``Certificate``
  (``properties.certificateKeyVaultProperties``: ``identity``, ``keyVaultUrl``), whose PATCH (``CertificatePatch``)
  carries tags only; ``ContainerApps.json``: ``ContainerApp`` (``configuration.ingress.customDomains[]``: ``name``,
  ``bindingType``, ``certificateId``).

The write schemas hold the members the emulator reads, typed as the specification types them, with the members the
specification marks required; the specification does not forbid undeclared members, so others pass through and are
kept. A body that fails is answered as ARM answers it: 400 with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..armfront import ArmError, bad_request, require_api_version

STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
SUB_RESOURCE = {"type": "object", "properties": {"id": STRING}}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _resource(properties: dict[str, Any], required: tuple[str, ...] = (), top: tuple[str, ...] = ()) -> dict[str, Any]:
    """An ARM resource body: ``properties`` holds ``properties``; ``top`` are required top-level members."""
    return _object(
        {"id": STRING, "name": STRING, "type": STRING, "location": STRING, "tags": {"type": "object"},
         "properties": _object(properties, required)},
        top,
    )  # fmt: skip


APP_GATEWAY = _resource(
    {
        "sslCertificates": _array(
            _object({"id": STRING, "name": STRING, "properties": _object({"keyVaultSecretId": STRING, "data": STRING})})
        ),
        "httpListeners": _array(
            _object(
                {
                    "id": STRING,
                    "name": STRING,
                    "properties": _object(
                        {
                            "protocol": {"enum": ["Http", "Https", "Tcp", "Tls"]},
                            "hostName": STRING,
                            "hostNames": _array(STRING),
                            "sslCertificate": SUB_RESOURCE,
                        }
                    ),
                }
            )
        ),
    }
)
CDN_PROFILE = _resource({}, top=("location", "sku"))
CDN_SECRET = _resource(
    {
        "parameters": _object(
            {
                "type": {"enum": ["UrlSigningKey", "CustomerCertificate", "ManagedCertificate",
                                  "AzureFirstPartyManagedCertificate"]},
                "secretSource": SUB_RESOURCE,
                "secretVersion": STRING,
                "useLatestVersion": BOOLEAN,
            },
            ("type",),
        )
    }
)  # fmt: skip
CDN_CUSTOM_DOMAIN = _resource(
    {
        "hostName": STRING,
        "tlsSettings": _object(
            {
                "certificateType": {"enum": ["CustomerCertificate", "ManagedCertificate",
                                             "AzureFirstPartyManagedCertificate"]},
                "minimumTlsVersion": {"enum": ["TLS10", "TLS12"]},
                "secret": SUB_RESOURCE,
            },
            ("certificateType",),
        ),
    }
)  # fmt: skip
WEB_CERTIFICATE = _resource(
    {"keyVaultId": STRING, "keyVaultSecretName": STRING, "serverFarmId": STRING, "hostNames": _array(STRING)},
    top=("location",),
)
WEB_SITE = _resource(
    {
        "hostNames": _array(STRING),
        "hostNameSslStates": _array(
            _object(
                {
                    "name": STRING,
                    "sslState": {"enum": ["Disabled", "SniEnabled", "IpBasedEnabled"]},
                    "thumbprint": STRING,
                    "hostType": {"enum": ["Standard", "Repository"]},
                }
            )
        ),
    },
    top=("location",),
)
APIM_SERVICE = _resource(
    {
        "publisherEmail": STRING,
        "publisherName": STRING,
        "hostnameConfigurations": _array(
            _object(
                {
                    "type": {"enum": ["Proxy", "Portal", "Management", "Scm", "DeveloperPortal", "ConfigurationApi"]},
                    "hostName": STRING,
                    "keyVaultId": STRING,
                    "identityClientId": STRING,
                },
                ("type", "hostName"),
            )
        ),
    },
    ("publisherEmail", "publisherName"),
    ("location", "sku"),
)
APIM_SERVICE_PATCH = _object({"properties": APIM_SERVICE["properties"]["properties"] | {"required": []}})
APP_ENVIRONMENT = _resource({}, top=("location",))
APP_CERTIFICATE = _resource(
    {"certificateKeyVaultProperties": _object({"identity": STRING, "keyVaultUrl": STRING})}, top=("location",)
)
APP_CERTIFICATE_PATCH = _object({"tags": {"type": "object"}})  # CertificatePatch: tags only
CONTAINER_APP = _resource(
    {
        "managedEnvironmentId": STRING,
        "environmentId": STRING,
        "configuration": _object(
            {
                "ingress": _object(
                    {
                        "customDomains": _array(
                            _object(
                                {
                                    "name": STRING,
                                    "bindingType": {"enum": ["Disabled", "SniEnabled", "Auto"]},
                                    "certificateId": STRING,
                                },
                                ("name",),
                            )
                        )
                    }
                )
            }
        ),
    },
    top=("location",),
)


@dataclass(frozen=True)
class ResourceType:
    """One ARM resource type as the emulator serves it."""

    name: str  # Microsoft.Network/applicationGateways; a child: Microsoft.Cdn/profiles/secrets
    api_versions: tuple[str, ...]
    put: Draft202012Validator | None  # None: read-only here (seeded through the control API)
    patch: Draft202012Validator | None = None
    lro: bool = False  # PUT answered as a long-running operation already done (provisioningState Succeeded)

    @property
    def parent(self) -> str | None:
        parts = self.name.split("/")
        return "/".join(parts[:-1]) if len(parts) > 2 else None


def _v(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


NETWORK, CDN, WEB, APIM, APP = ("2025-05-01",), ("2024-02-01",), ("2024-04-01",), ("2024-05-01",), ("2025-01-01",)
TYPES: dict[str, ResourceType] = {
    t.name.lower(): t
    for t in (
        ResourceType("Microsoft.Network/applicationGateways", NETWORK, _v(APP_GATEWAY), lro=True),
        ResourceType("Microsoft.Cdn/profiles", CDN, _v(CDN_PROFILE), lro=True),
        ResourceType("Microsoft.Cdn/profiles/secrets", CDN, _v(CDN_SECRET), lro=True),
        ResourceType("Microsoft.Cdn/profiles/customDomains", CDN, _v(CDN_CUSTOM_DOMAIN), _v(CDN_CUSTOM_DOMAIN), True),
        ResourceType("Microsoft.Web/certificates", WEB, _v(WEB_CERTIFICATE), _v(WEB_CERTIFICATE)),
        ResourceType("Microsoft.Web/sites", WEB, _v(WEB_SITE), lro=True),
        ResourceType("Microsoft.ApiManagement/service", APIM, _v(APIM_SERVICE), _v(APIM_SERVICE_PATCH), True),
        ResourceType("Microsoft.App/managedEnvironments", APP, _v(APP_ENVIRONMENT), lro=True),
        ResourceType(
            "Microsoft.App/managedEnvironments/certificates", APP, _v(APP_CERTIFICATE), _v(APP_CERTIFICATE_PATCH)
        ),
        ResourceType("Microsoft.App/containerApps", APP, _v(CONTAINER_APP), lro=True),
    )
}
UNKNOWN_VERSION = ("NoRegisteredProviderFound", "No registered resource provider found for api version")


def resource_type(name: str) -> ResourceType:
    found = TYPES.get(name.lower())
    if found is None:
        raise ArmError(
            404, "InvalidResourceType", f"The resource type '{name}' could not be found in the emulator's providers."
        )
    return found


def check_api_version(rtype: ResourceType, query: Mapping[str, str]) -> None:
    require_api_version(query, rtype.api_versions, UNKNOWN_VERSION)


def check_body(rtype: ResourceType, method: str, body: Any) -> dict[str, Any]:
    """The body of a PUT or PATCH as the specification allows it, or ARM's 400."""
    validator = rtype.put if method == "PUT" else rtype.patch
    if validator is None:
        raise ArmError(405, "MethodNotAllowed", f"The emulator does not accept {method} on {rtype.name}.")
    if not isinstance(body, dict):
        raise bad_request("The request content was invalid and could not be deserialized.", "InvalidRequestContent")
    error = best_match(validator.iter_errors(body))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "the body"
        raise bad_request(
            f"The request content was invalid at '{where}': {error.message[:300]}", "InvalidRequestContent"
        )
    return body
