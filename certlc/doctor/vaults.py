"""Each allow-listed vault answers the app's identity and lets it get and list certificates.

gather: list one page of certificate properties, then get the first certificate listed (or, in an empty vault,
a name that does not exist: Key Vault checks the caller's role before it looks a name up, so 404 there means the
get was allowed). Both are reads. Write access (create, merge) cannot be checked without writing, so it is not.
decide: ``judge_vault`` names what is missing: the role, the network path, or the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from certlc.doctor.bundles import verify_for
from certlc.doctor.net import answer_from_sdk_error, sdk_options
from certlc.doctor.result import Answer, CheckResult, failed, passed
from renewal.vaults import Vault

OFFICER_ROLE = "Key Vault Certificates Officer"  # what infra/main.json assigns the app's identity on each vault
READ_ROLES = "Key Vault Reader or Key Vault Certificate User"
PROBE_NAME = "certlc-doctor-probe"  # read only when the vault lists no certificate


@dataclass(frozen=True)
class VaultObservation:
    vault: Vault
    listed: Answer
    got: Answer | None = None  # None when listing already failed
    got_name: str = ""
    certificates_seen: int = 0


def probe_vault(vault: Vault, env: Mapping[str, str], timeout: float) -> VaultObservation:
    from azure.core.exceptions import AzureError

    from renewal.clients import certificate_client
    from renewal.errors import ConfigError

    trust = verify_for(env, "CERTLC_KEYVAULT_CA_BUNDLE")
    if isinstance(trust, Answer):
        return VaultObservation(vault, trust)
    try:
        client = certificate_client(vault.url, env, **sdk_options(timeout))
    except ConfigError as exc:
        return VaultObservation(vault, Answer(code="Config", message=str(exc)))
    with client:
        try:
            page = list(next(client.list_properties_of_certificates(max_page_size=1).by_page(), []))
        except (AzureError, OSError) as exc:
            return VaultObservation(vault, answer_from_sdk_error(exc, timeout))
        name = page[0].name if page else PROBE_NAME
        try:
            client.get_certificate(name)
            got = Answer(status=200)
        except (AzureError, OSError) as exc:
            got = answer_from_sdk_error(exc, timeout)
    return VaultObservation(vault, Answer(status=200), got, name, len(page))


def judge_vault(seen: VaultObservation) -> CheckResult:
    vault = seen.vault
    name, target = f"vault {vault.name}", vault.url
    if seen.listed.code == "Config":
        fix = "unset CERTLC_LOCAL_TOKEN: it is for the local emulators; a deployment uses its managed identity"
        return failed(name, seen.listed.message, seen.listed.fix or fix, target)
    if not seen.listed.ok:
        return _refused(name, target, "list certificates", seen.listed, vault)
    got = seen.got or Answer()
    if not got.ok and got.status != 404:  # 404: the role allowed the get, the name is gone
        return _refused(name, target, f"get certificate {seen.got_name}", got, vault)
    listed = "the vault lists no certificate yet" if not seen.certificates_seen else f"read {seen.got_name}"
    return passed(name, f"answers; the identity can list and get certificates ({listed})", target)


def _refused(name: str, target: str, what: str, answer: Answer, vault: Vault) -> CheckResult:
    detail = f"cannot {what}: {answer.describe()}"
    if answer.no_token:
        return failed(
            name, detail, "run where the app's managed identity (or a signed-in identity) is available", target
        )
    if answer.unreachable:
        return failed(
            name,
            detail,
            f"check the URL in CERTLC_VAULTS ({vault.name}={vault.url}) and that this network can reach the vault",
            target,
        )
    code = answer.code.lower()
    if answer.status == 403 and ("firewall" in code or "connection" in code):
        return failed(name, detail, "allow the app's network (VNet, private endpoint) in the vault's firewall", target)
    if answer.status == 403 and "accessdenied" in code:  # a vault on access policies says AccessDenied
        return failed(
            name,
            detail,
            f"the vault uses access policies: give the identity certificate get/list/create/update, "
            f"or switch it to Azure RBAC and assign '{OFFICER_ROLE}'",
            target,
        )
    if answer.status == 403:
        return failed(
            name,
            detail,
            f"assign the app's identity the '{OFFICER_ROLE}' role on vault {vault.name} (infra/main.json does); "
            f"read and list alone need {READ_ROLES}",
            target,
        )
    if answer.status == 401:
        return failed(
            name,
            detail,
            "the vault refused the token: use the app's managed identity from the vault's tenant "
            "(CERTLC_LOCAL_TOKEN is for the local emulator only)",
            target,
        )
    return failed(name, detail, f"the vault answered unexpectedly; check that {vault.url} is a Key Vault", target)
