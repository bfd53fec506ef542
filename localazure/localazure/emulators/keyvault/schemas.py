"""What a Key Vault request may carry, declared once, and the check every request passes before a handler runs.

The facts come from the Key Vault data-plane REST specification in Azure/azure-rest-api-specs:
``specification/keyvault/data-plane/Microsoft.KeyVault/stable/2025-07-01/certificates.json``
(``info.version`` 2025-07-01, the newest stable certificates description published there; it is
generated from TypeSpec, so the ``api-version`` parameter is declared in the same file as
``Azure.Core.Foundations.ApiVersionParameter`` instead of a separate ``common.json``). The schemas
below are written for the requests the emulator serves; they are not a copy of that file:

* body per operation (the spec's ``operationId``): ``CreateCertificate`` (CertificateCreateParameters),
  ``ImportCertificate`` (CertificateImportParameters, ``value`` required), ``MergeCertificate``
  (CertificateMergeParameters, ``x5c`` required), ``UpdateCertificate`` (CertificateUpdateParameters),
  ``UpdateCertificatePolicy`` (CertificatePolicy), ``UpdateCertificateOperation``
  (CertificateOperationUpdateParameter, ``cancellation_requested`` required), ``SetCertificateIssuer``
  (CertificateIssuerSetParameters, ``provider`` required), ``UpdateCertificateIssuer``
  (CertificateIssuerUpdateParameters), ``SetCertificateContacts`` (Contacts), ``RestoreCertificate``
  (CertificateRestoreParameters, ``value`` required, base64url); the spec marks each of these bodies
  ``required: true``;
* types and formats: ``int32`` integers are bounded to -2**31..2**31-1, ``unixtime`` is an integer,
  ``byte`` is a string; tags are an object of string values;
* enums: JsonWebKeyType (kty), JsonWebKeyCurveName (crv), KeyUsageType (key_usage, nine values
  including ``encipherOnly`` and ``decipherOnly``), CertificatePolicyAction (action_type);
* ranges: ``validity_months`` minimum 0, ``lifetime_percentage`` 1..99, ``maxresults`` 1..25 (certificates,
  versions, issuers, deleted certificates; ``includePending`` on certificates and deleted certificates);
  ``days_before_expiry`` minimum 1 (the spec's description: "between 1 and validity_in_months
  multiplied by 27"; the upper bound depends on another field and is not checked here);
* the certificate name pattern ``^[0-9a-zA-Z-]+$`` (create, import), with Key Vault's 127-character
  limit, applied to every certificate route;
* ``secret_props.contentType`` is a plain string in the spec, which names ``application/x-pkcs12``
  and ``application/x-pem-file`` as its examples; certificates store only those two, so they are
  the enum here.

Properties the spec does not declare are let through (the spec does not forbid them, and the
emulator's own ``basic_constraints`` extension rides on that). ``null`` is refused where the spec
declares a type (the SDKs leave unset fields out). Checks that need state or span fields (RSA key
sizes, the issuer names the emulator knows, the subject-or-SAN rule, parsing certificates) stay
in the handlers.

api-versions served: the ones ``azure-keyvault-certificates`` 4.12 lists in its ``ApiVersion`` enum
(2026-04-01, its default, down to 7.0 and 2016-10-01). The spec repository as read had no 2026-04-01
folder yet. Compared with ``stable/7.6/certificates.json``: the same enums and ranges; 2025-07-01 adds
``preserveCertOrder`` and the ``uris`` and ``ipAddresses`` SAN kinds. One schema serves every version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import KeyVaultError, bad_parameter

SPEC = "azure-rest-api-specs specification/keyvault/data-plane/Microsoft.KeyVault/stable/2025-07-01/certificates.json"

# Newest first: the first is named in the "not recognized" answer.
API_VERSIONS: tuple[str, ...] = (
    "2026-04-01",
    "2025-07-01",
    "7.6",
    "7.5",
    "7.4",
    "7.3",
    "7.2",
    "7.1",
    "7.0",
    "2016-10-01",
)

INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
UNIXTIME = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
BOOLEAN = {"type": "boolean"}
STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}

KEY_TYPES = ("EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM")  # JsonWebKeyType
CURVES = ("P-256", "P-384", "P-521", "P-256K")  # JsonWebKeyCurveName
KEY_USAGES = (  # KeyUsageType
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)
ACTION_TYPES = ("EmailContacts", "AutoRenew")  # CertificatePolicyAction
CONTENT_TYPES = ("application/x-pkcs12", "application/x-pem-file")
NAME_PATTERN = "^[0-9a-zA-Z-]{1,127}$"


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


TAGS = {"type": "object", "additionalProperties": STRING}
ATTRIBUTES = _object(  # CertificateAttributes (created, updated, recoverableDays, recoveryLevel are read-only)
    {"enabled": BOOLEAN, "nbf": UNIXTIME, "exp": UNIXTIME}
)
KEY_PROPERTIES = _object(
    {
        "exportable": BOOLEAN,
        "kty": {"enum": list(KEY_TYPES)},
        "key_size": INT32,
        "reuse_key": BOOLEAN,
        "crv": {"enum": list(CURVES)},
    }
)
SECRET_PROPERTIES = _object({"contentType": {"enum": list(CONTENT_TYPES)}})
SANS = _object({"emails": STRINGS, "dns_names": STRINGS, "upns": STRINGS, "uris": STRINGS, "ipAddresses": STRINGS})
X509_PROPERTIES = _object(
    {
        "subject": STRING,
        "ekus": STRINGS,
        "sans": SANS,
        "key_usage": {"type": "array", "items": {"enum": list(KEY_USAGES)}},
        "validity_months": {**INT32, "minimum": 0},
    }
)
TRIGGER = _object(
    {
        "lifetime_percentage": {**INT32, "minimum": 1, "maximum": 99},
        "days_before_expiry": {**INT32, "minimum": 1},
    }
)
LIFETIME_ACTION = _object({"trigger": TRIGGER, "action": _object({"action_type": {"enum": list(ACTION_TYPES)}})})
ISSUER = _object({"name": STRING, "cty": STRING, "cert_transparency": BOOLEAN})
POLICY = _object(
    {
        "id": STRING,
        "key_props": KEY_PROPERTIES,
        "secret_props": SECRET_PROPERTIES,
        "x509_props": X509_PROPERTIES,
        "lifetime_actions": {"type": "array", "items": LIFETIME_ACTION},
        "issuer": ISSUER,
        "attributes": ATTRIBUTES,
    }
)

ISSUER_CREDENTIALS = _object({"account_id": STRING, "pwd": STRING})  # IssuerCredentials
ADMINISTRATOR = _object({"first_name": STRING, "last_name": STRING, "email": STRING, "phone": STRING})
ORGANIZATION = _object(
    {"id": STRING, "admin_details": {"type": "array", "items": ADMINISTRATOR}}
)  # OrganizationDetails
ISSUER_ATTRIBUTES = _object({"enabled": BOOLEAN})  # IssuerAttributes (created, updated are read-only)
_ISSUER_FIELDS = {
    "provider": STRING,
    "credentials": ISSUER_CREDENTIALS,
    "org_details": ORGANIZATION,
    "attributes": ISSUER_ATTRIBUTES,
}
CONTACT = _object({"email": STRING, "name": STRING, "phone": STRING})  # Contact
BASE64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]*={0,2}$"}

BODIES: dict[str, dict[str, Any]] = {
    "CreateCertificate": _object(
        {"policy": POLICY, "attributes": ATTRIBUTES, "tags": TAGS, "preserveCertOrder": BOOLEAN}
    ),
    "ImportCertificate": _object(
        {
            "value": STRING,
            "pwd": STRING,
            "policy": POLICY,
            "attributes": ATTRIBUTES,
            "tags": TAGS,
            "preserveCertOrder": BOOLEAN,
        },
        required=("value",),
    ),
    "MergeCertificate": _object(
        {"x5c": STRINGS, "attributes": ATTRIBUTES, "tags": TAGS},
        required=("x5c",),
    ),
    "UpdateCertificate": _object({"policy": POLICY, "attributes": ATTRIBUTES, "tags": TAGS}),
    "UpdateCertificatePolicy": POLICY,
    "UpdateCertificateOperation": _object({"cancellation_requested": BOOLEAN}, required=("cancellation_requested",)),
    "SetCertificateIssuer": _object(_ISSUER_FIELDS, required=("provider",)),
    "UpdateCertificateIssuer": _object(_ISSUER_FIELDS),
    "SetCertificateContacts": _object({"contacts": {"type": "array", "items": CONTACT}}),
    "RestoreCertificate": _object({"value": BASE64URL}, required=("value",)),
}

_LIST_QUERY = _object({"maxresults": {**INT32, "minimum": 1, "maximum": 25}, "$skiptoken": STRING})
QUERIES: dict[str, dict[str, Any]] = {
    "GetCertificates": _object({**_LIST_QUERY["properties"], "includePending": BOOLEAN}),
    "GetCertificateVersions": _LIST_QUERY,
    "GetCertificateIssuers": _LIST_QUERY,
    "GetDeletedCertificates": _object({**_LIST_QUERY["properties"], "includePending": BOOLEAN}),
}


@dataclass(frozen=True)
class Operation:
    """One operation of the spec as the emulator serves it."""

    name: str
    body: Draft202012Validator | None = None
    query: Draft202012Validator | None = None


def _validator(schema: dict[str, Any] | None) -> Draft202012Validator | None:
    if schema is None:
        return None
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


_OPERATION_NAMES = (
    "GetCertificates",
    "CreateCertificate",
    "ImportCertificate",
    "GetCertificateOperation",
    "UpdateCertificateOperation",
    "DeleteCertificateOperation",
    "MergeCertificate",
    "GetCertificatePolicy",
    "UpdateCertificatePolicy",
    "GetCertificateVersions",
    "GetCertificate",
    "UpdateCertificate",
    "DeleteCertificate",
    "GetDeletedCertificate",
    "PurgeDeletedCertificate",
    "RecoverDeletedCertificate",
    "GetSecret",
    "GetCertificateIssuers",
    "SetCertificateIssuer",
    "UpdateCertificateIssuer",
    "GetCertificateIssuer",
    "DeleteCertificateIssuer",
    "SetCertificateContacts",
    "GetCertificateContacts",
    "DeleteCertificateContacts",
    "BackupCertificate",
    "RestoreCertificate",
    "GetDeletedCertificates",
)
OPERATIONS: dict[str, Operation] = {
    name: Operation(name, _validator(BODIES.get(name)), _validator(QUERIES.get(name))) for name in _OPERATION_NAMES
}

_INTEGER = re.compile(r"^[+-]?[0-9]{1,20}$")
_MAX_MESSAGE = 300


def unsupported_api_version(value: str) -> KeyVaultError:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return bad_parameter(
        f"The specified version ({shown}) is not recognized. Consider using the latest supported version "
        f"({API_VERSIONS[0]})."
    )


def check_api_version(query: Mapping[str, str]) -> str:
    value = query.get("api-version")
    if not value:
        raise bad_parameter(f"The api-version query parameter is required (for example api-version={API_VERSIONS[0]})")
    if value not in API_VERSIONS:
        raise unsupported_api_version(value)
    return value


def _where(error: ValidationError) -> str:
    where = ""
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _message(error: ValidationError, what: str) -> str:
    detail = error.message if len(error.message) <= _MAX_MESSAGE else error.message[:_MAX_MESSAGE] + "..."
    where = _where(error)
    if not where:
        return f"The {what} is not valid: {detail}"
    return f"Property {where} in the {what} has an invalid value: {detail}"


def _coerce(schema: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """Query values are text: read the ones declared as integer or boolean; what does not read stays text."""
    properties = schema.get("properties", {})
    coerced: dict[str, Any] = {}
    for key, value in query.items():
        kind = properties.get(key, {}).get("type")
        if kind == "integer" and _INTEGER.match(value.strip()):
            coerced[key] = int(value)
        elif kind == "boolean" and value.lower() in ("true", "false"):
            coerced[key] = value.lower() == "true"
        else:
            coerced[key] = value
    return coerced


def check_path(params: Mapping[str, str]) -> None:
    name = params.get("name")
    if name is not None and not re.match(NAME_PATTERN, name):
        shown = name if len(name) <= 140 else name[:140] + "..."
        raise bad_parameter(
            f"The request URI contains an invalid name: {shown!r}. Names are 1-127 characters of 0-9, a-z, A-Z and -."
        )


def check_query(operation: Operation, query: Mapping[str, str]) -> None:
    if operation.query is None:
        return
    error = best_match(operation.query.iter_errors(_coerce(operation.query.schema, query)))
    if error is not None:
        raise bad_parameter(_message(error, "query"))


def check_body(operation: Operation, body: Any) -> None:
    if operation.body is None:
        return
    if body is None:
        raise bad_parameter("The request body is required and must be a JSON object")
    error = best_match(operation.body.iter_errors(body))
    if error is not None:
        raise bad_parameter(_message(error, "request body"))


def check_request(operation: Operation, params: Mapping[str, str], query: Mapping[str, str], body: Any) -> None:
    """Everything the spec lets us check without state; raises ``BadParameter`` (400) on the first problem."""
    check_path(params)
    check_query(operation, query)
    check_body(operation, body)
