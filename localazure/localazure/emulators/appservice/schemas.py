"""What the emulator may serve, from the Web REST specification, and the check every answer passes before it goes out.

The facts come from Azure/azure-rest-api-specs ``specification/web/resource-manager/Microsoft.Web/stable/2024-04-01``:
``WebApps.json`` (WebApps_ListFunctions answers a ``FunctionEnvelopeCollection``,
WebApps_GetAppSettingsKeyVaultReferences an ``ApiKVReferenceCollection``, both pageable through ``nextLink``; the
``FunctionEnvelope`` and ``ApiKVReference`` properties and the ``ResolveStatus`` and ``ConfigReferenceSource`` enums)
and ``CommonDefinitions.json`` (``ProxyOnlyResource``: ``id``, ``name``, ``kind``, ``type``). A collection requires
``value``.

The specification does not forbid undeclared members; the emulator holds itself to declaring nothing else, so its
resource properties refuse anything the specification does not name. One member is served as the service sends it,
not as the specification types it: ``identityType`` is declared a ``ManagedServiceIdentity`` object, but App Service
answers a string (``SystemAssigned``), which strictly typed clients trip over (Azure/azure-sdk-for-go#14509), so
both are allowed here and the doctor reads neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..armfront import require_api_version

SPEC = "azure-rest-api-specs specification/web/resource-manager/Microsoft.Web/stable/2024-04-01/WebApps.json"
API_VERSIONS = ("2024-04-01",)
RESOLVE_STATUS = (  # x-ms-enum ResolveStatus
    "Initialized",
    "Resolved",
    "InvalidSyntax",
    "MSINotEnabled",
    "VaultNotFound",
    "SecretNotFound",
    "SecretVersionNotFound",
    "AccessToKeyVaultDenied",
    "OtherReasons",
    "FetchTimedOut",
    "UnauthorizedClient",
)
SOURCES = ("KeyVault",)  # x-ms-enum ConfigReferenceSource

STRING = {"type": "string"}
PROXY_ONLY_RESOURCE = {"id": STRING, "name": STRING, "kind": STRING, "type": STRING}


def _resource(properties: dict[str, Any]) -> dict[str, Any]:
    inner = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"type": "object", "properties": {**PROXY_ONLY_RESOURCE, "properties": inner}, "additionalProperties": False}


def _collection(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "array", "items": item}, "nextLink": STRING},
        "additionalProperties": False,
    }


FUNCTION_ENVELOPE = _resource(
    {
        "function_app_id": STRING,
        "script_root_path_href": STRING,
        "script_href": STRING,
        "config_href": STRING,
        "test_data_href": STRING,
        "secrets_file_href": STRING,
        "href": STRING,
        "config": {"type": "object"},
        "files": {"type": "object", "additionalProperties": STRING},
        "test_data": STRING,
        "invoke_url_template": STRING,
        "language": STRING,
        "isDisabled": {"type": "boolean"},
    }
)
API_KV_REFERENCE = _resource(
    {
        "reference": STRING,
        "status": {"enum": list(RESOLVE_STATUS)},
        "vaultName": STRING,
        "secretName": STRING,
        "secretVersion": STRING,
        "identityType": {"type": ["string", "object"]},
        "details": STRING,
        "source": {"enum": list(SOURCES)},
        "activeVersion": STRING,
    }
)
COLLECTIONS = {
    "FunctionEnvelopeCollection": Draft202012Validator(_collection(FUNCTION_ENVELOPE)),
    "ApiKVReferenceCollection": Draft202012Validator(_collection(API_KV_REFERENCE)),
}
for _validator in COLLECTIONS.values():
    Draft202012Validator.check_schema(_validator.schema)


def check_api_version(query: Mapping[str, str]) -> None:
    unknown = ("NoRegisteredProviderFound", "No registered resource provider found for api version")
    require_api_version(query, API_VERSIONS, unknown)


def check_served(collection: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the specification's ``collection`` allows it; anything else is the emulator's bug."""
    error = best_match(COLLECTIONS[collection].iter_errors(body))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "the body"
        raise AssertionError(f"the emulator would serve an invalid {collection} at {where}: {error.message[:300]}")
    return body
