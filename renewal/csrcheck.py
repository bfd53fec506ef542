"""Checks a CSR made by Key Vault against the certificate's policy before any CA sees it.

A mismatch means the policy changed under us or the pending operation is not ours:
sending it would issue a certificate nobody asked for, so it is a permanent failure.
"""

from __future__ import annotations

from typing import Any

from renewal.x509info import alt_names, key_spec, load_csr, subject_attributes


class CsrMismatch(Exception):
    """The CSR does not match the policy; the message lists every difference."""


def check_csr_against_policy(csr_der: bytes, policy: Any) -> None:
    csr = load_csr(csr_der)
    problems: list[str] = []
    if not csr.is_signature_valid:
        problems.append("the CSR signature does not verify")
    if policy.subject and subject_attributes(csr.subject) != subject_attributes(policy.subject):
        problems.append(f"subject {csr.subject.rfc4514_string()!r} differs from the policy's {policy.subject!r}")
    names = alt_names(csr.extensions)
    wanted = {
        "DNS names": {n.lower() for n in policy.san_dns_names or ()},
        "e-mail SANs": {n.lower() for n in policy.san_emails or ()},
        "UPN SANs": set(policy.san_user_principal_names or ()),
    }
    actual = {"DNS names": set(names.dns), "e-mail SANs": set(names.emails), "UPN SANs": set(names.upns)}
    for label, expected in wanted.items():
        if expected != actual[label]:
            problems.append(f"{label} {sorted(actual[label])} differ from the policy's {sorted(expected)}")
    spec = key_spec(csr.public_key())
    kty = _value(policy.key_type).split("-")[0].upper()
    if kty and spec.kty != kty:
        problems.append(f"key type {spec.kty} differs from the policy's {kty}")
    elif kty == "RSA" and policy.key_size and spec.size != policy.key_size:
        problems.append(f"RSA key of {spec.size} bits differs from the policy's {policy.key_size}")
    elif kty == "EC" and policy.key_curve_name and spec.curve != _value(policy.key_curve_name):
        problems.append(f"curve {spec.curve} differs from the policy's {policy.key_curve_name}")
    if problems:
        raise CsrMismatch("; ".join(problems))


def _value(enum_or_str: Any) -> str:
    """SDK enums print as ``KeyType.rsa``; their value is the wire string."""
    return str(getattr(enum_or_str, "value", enum_or_str) or "")
