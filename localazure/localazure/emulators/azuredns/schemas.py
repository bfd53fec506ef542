"""What a record set request may carry, from the DNS REST specification, and the check every request passes.

The facts come from Azure/azure-rest-api-specs
``specification/dns/resource-manager/Microsoft.Network/stable/2018-05-01/dns.json`` (``info.version``
2018-05-01, the default of ``azure-mgmt-dns`` 9): the ``RecordSet`` body of RecordSets_CreateOrUpdate
(``required: true``) with ``RecordSetProperties``; integer formats (``TTL`` int64, the MX/SRV/CAA fields
int32); the ``recordType`` enum; the read-only ``id``, ``name``, ``type``, ``fqdn`` and
``provisioningState``, which a client may send back and the service ignores. The specification does not
forbid undeclared properties, so they are let through; ``null`` is refused where a type is declared.

Two rules the service applies beyond the schema are checked in the handler: a record set carries only
the records of the type in its URL, and an A record's ``ipv4Address`` is an IPv4 address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..armfront import ArmError, bad_request, require_api_version

SPEC = "azure-rest-api-specs specification/dns/resource-manager/Microsoft.Network/stable/2018-05-01/dns.json"
API_VERSIONS = ("2018-05-01",)
RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")  # the recordType enum
RECORD_ARRAYS = {  # the RecordSetProperties member holding each type's records
    "A": "ARecords",
    "AAAA": "AAAARecords",
    "CAA": "caaRecords",
    "CNAME": "CNAMERecord",
    "MX": "MXRecords",
    "NS": "NSRecords",
    "PTR": "PTRRecords",
    "SOA": "SOARecord",
    "SRV": "SRVRecords",
    "TXT": "TXTRecords",
}

STRING = {"type": "string"}
INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


RECORD_SET_PROPERTIES = _object(
    {
        "metadata": {"type": "object", "additionalProperties": STRING},
        "TTL": INT64,
        "fqdn": STRING,
        "provisioningState": STRING,
        "targetResourceId": STRING,
        "ARecords": _array(_object({"ipv4Address": STRING})),
        "AAAARecords": _array(_object({"ipv6Address": STRING})),
        "MXRecords": _array(_object({"preference": INT32, "exchange": STRING})),
        "NSRecords": _array(_object({"nsdname": STRING})),
        "PTRRecords": _array(_object({"ptrdname": STRING})),
        "SRVRecords": _array(_object({"priority": INT32, "weight": INT32, "port": INT32, "target": STRING})),
        "TXTRecords": _array(_object({"value": _array(STRING)})),
        "CNAMERecord": _object({"cname": STRING}),
        "SOARecord": _object(
            {
                "host": STRING,
                "email": STRING,
                "serialNumber": INT64,
                "refreshTime": INT64,
                "retryTime": INT64,
                "expireTime": INT64,
                "minimumTTL": INT64,
            }
        ),
        "caaRecords": _array(_object({"flags": INT32, "tag": STRING, "value": STRING})),
    }
)
RECORD_SET = _object(
    {"id": STRING, "name": STRING, "type": STRING, "etag": STRING, "properties": RECORD_SET_PROPERTIES}
)
Draft202012Validator.check_schema(RECORD_SET)
_RECORD_SET = Draft202012Validator(RECORD_SET)


def check_api_version(query: Mapping[str, str]) -> None:
    unknown = ("InvalidApiVersionParameter", "The resource type 'dnszones' could not be found for api version")
    require_api_version(query, API_VERSIONS, unknown)


def check_record_set(rtype: str, body: Any) -> dict[str, Any]:
    """The body of a PUT, checked against the specification's RecordSet; returns its properties."""
    if not isinstance(body, dict):
        raise bad_request("The request body is required and must be a JSON object (a RecordSet).")
    error = best_match(_RECORD_SET.iter_errors(body))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "the body"
        raise bad_request(f"The request body is not a valid RecordSet at {where}: {error.message[:300]}")
    properties = body.get("properties") or {}
    others = sorted(key for other, key in RECORD_ARRAYS.items() if other != rtype and key in properties)
    if others:
        raise bad_request(f"A record set of type {rtype} cannot carry {', '.join(others)}.")
    return properties


def unsupported(rtype: str) -> ArmError:
    return ArmError(404, "NotFound", f"The emulator serves A and TXT record sets only, not {rtype}.")
