"""Certificate policies as Key Vault stores them: the caller's policy with the service defaults filled in."""

from __future__ import annotations

import copy
from typing import Any

from .errors import bad_parameter

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
CONTENT_TYPES = (PKCS12, PEM)
DEFAULT_EKUS = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]
SAN_KEYS = ("dns_names", "emails", "upns", "ipAddresses", "uris")


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_parameter(f"Property {field} must be a JSON object")
    return copy.deepcopy(value)


def normalize(raw: Any, now: int, *, created: int | None = None) -> dict[str, Any]:
    """Fill defaults the way the recordings show Key Vault does (key, secret, x509, actions, issuer)."""
    policy = _object(raw, "policy")
    key_props = _object(policy.get("key_props"), "policy.key_props")
    kty = str(key_props.get("kty") or "RSA")
    key_props = {"exportable": True, "kty": kty, **key_props}
    if kty.upper().startswith("RSA"):
        key_props.setdefault("key_size", 2048)
    else:
        key_props.setdefault("crv", "P-256")
    key_props.setdefault("reuse_key", False)

    secret_props = _object(policy.get("secret_props"), "policy.secret_props")
    secret_props.setdefault("contentType", PKCS12)
    if secret_props["contentType"] not in CONTENT_TYPES:
        raise bad_parameter(f"Invalid secret content type {secret_props['contentType']!r}: use one of {CONTENT_TYPES}")

    x509_props = _object(policy.get("x509_props"), "policy.x509_props")
    sans = _object(x509_props.get("sans"), "policy.x509_props.sans")
    unknown = set(sans) - set(SAN_KEYS)
    if unknown:
        raise bad_parameter(f"Unknown subject alternative name kinds {sorted(unknown)}: use {list(SAN_KEYS)}")
    if not x509_props.get("subject") and not any(sans.values()):
        raise bad_parameter("Policy must have a subject or at least one subject alternative name")
    x509_props = {
        "subject": x509_props.get("subject", ""),
        "sans": {k: v for k, v in sans.items() if v is not None},
        "ekus": x509_props.get("ekus") if x509_props.get("ekus") is not None else list(DEFAULT_EKUS),
        "key_usage": x509_props.get("key_usage") or _default_key_usage(kty),
        "validity_months": _validity_months(x509_props.get("validity_months")),
        "basic_constraints": x509_props.get("basic_constraints") or {"ca": False},
    }

    issuer = _object(policy.get("issuer"), "policy.issuer")
    issuer.setdefault("name", "Unknown")
    default_action = "AutoRenew" if issuer["name"].lower() == "self" else "EmailContacts"
    actions = policy.get("lifetime_actions") or [
        {"trigger": {"lifetime_percentage": 80}, "action": {"action_type": default_action}}
    ]
    attributes = _object(policy.get("attributes"), "policy.attributes")
    return {
        "key_props": key_props,
        "secret_props": secret_props,
        "x509_props": x509_props,
        "lifetime_actions": actions,
        "issuer": issuer,
        "attributes": {
            "enabled": attributes.get("enabled", True),
            "created": created if created is not None else now,
            "updated": now,
        },
    }


def _validity_months(value: Any) -> int:
    """Absent (or null) means 12; anything given must be a whole number of months in 1..1200 (0 is refused)."""
    if value is None:
        return 12
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1200:
        raise bad_parameter(f"Property validity_months has invalid value {value!r}: a whole number from 1 to 1200")
    return value


def _default_key_usage(kty: str) -> list[str]:
    return ["digitalSignature", "keyEncipherment"] if kty.upper().startswith("RSA") else ["digitalSignature"]


def merge_update(current: dict[str, Any], patch: Any, now: int) -> dict[str, Any]:
    """PATCH semantics for ``/policy``: given sections replace fields, the rest is kept."""
    patch = _object(patch, "policy")
    merged = copy.deepcopy(current)
    for section in ("key_props", "secret_props", "x509_props", "issuer"):
        if section in patch:
            merged[section] = {**merged.get(section, {}), **_object(patch[section], f"policy.{section}")}
    if "lifetime_actions" in patch:
        merged["lifetime_actions"] = patch["lifetime_actions"]
    created = current.get("attributes", {}).get("created", now)
    return normalize(merged, now, created=created)


def issuer_view(policy: dict[str, Any]) -> dict[str, Any]:
    """The pending operation shows the issuer name only (see merge_certificate.json)."""
    return {"name": policy["issuer"]["name"]}


def render(policy: dict[str, Any], base_url: str, name: str) -> dict[str, Any]:
    return {"id": f"{base_url}/certificates/{name}/policy", **copy.deepcopy(policy)}
