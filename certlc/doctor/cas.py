"""The CA adapters the app can use answer: the default one (``CERTLC_CA``) and every other one that is configured.

Each probe is a read: ``local`` reads the CA's certificate and key files; ``cfssl`` POSTs ``{}`` to
``/api/v1/cfssl/info`` (cfssl's API takes its requests as POST); ``acme`` GETs the directory; ``adcs`` GETs the
``/certsrv/`` page with the adapter's credentials. Nothing is ever submitted for signing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certlc.doctor.bundles import verify_for
from certlc.doctor.net import http, one_line
from certlc.doctor.result import Answer, CheckResult, failed, passed
from renewal.ca.adcs import credentials_problem

ADAPTERS = ("local", "adcs", "cfssl", "acme")
MAIN_SETTING = {
    "local": "CERTLC_LOCAL_CA_DIR",
    "adcs": "CERTLC_ADCS_SERVER",
    "cfssl": "CERTLC_CFSSL_URL",
    "acme": "CERTLC_ACME_DIRECTORY",
}
KEYVAULT_REFERENCE = "@Microsoft.KeyVault("
ADCS_MARKER = "Certificate Services"  # the title of every AD CS web enrollment page
ACME_RESOURCES = ("newNonce", "newAccount", "newOrder")


def adapters_to_check(env: Mapping[str, str]) -> list[str]:
    """The default adapter, then every other adapter whose main setting is set (a tag may pick it)."""
    default = (env.get("CERTLC_CA") or "").strip().lower() or "local"
    others = [name for name in ADAPTERS if name != default and (env.get(MAIN_SETTING[name]) or "").strip()]
    return [default, *others]


def check_ca(name: str, env: Mapping[str, str], timeout: float, now: dt.datetime | None = None) -> CheckResult:
    checks: dict[str, Callable[[], CheckResult]] = {
        "local": lambda: judge_local(read_local(env), now or dt.datetime.now(dt.UTC)),
        "cfssl": lambda: judge_cfssl(*probe_cfssl(env, timeout)),
        "acme": lambda: judge_acme(*probe_acme(env, timeout)),
        "adcs": lambda: judge_adcs(*probe_adcs(env, timeout)),
    }
    if name not in checks:
        return failed(
            f"ca {name}",
            f"CERTLC_CA={name!r} is not a CA adapter certlc has",
            "set CERTLC_CA to local, adcs, cfssl or acme",
        )
    return checks[name]()


# -- local ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFiles:
    directory: Path
    certificate: bytes | None
    key: bytes | None
    profiles: bytes | None
    error: str = ""  # why a file that exists could not be read


def read_local(env: Mapping[str, str]) -> LocalFiles:
    directory = Path(env.get("CERTLC_LOCAL_CA_DIR") or ".local/ca")
    found: dict[str, bytes | None] = {}
    for label, file in (("certificate", "ca.pem"), ("key", "ca-key.pem"), ("profiles", "profiles.json")):
        path = directory / file
        try:
            found[label] = path.read_bytes() if path.exists() else None
        except OSError as exc:
            return LocalFiles(directory, None, None, None, f"cannot read {path}: {exc.strerror or exc}")
    return LocalFiles(directory, found["certificate"], found["key"], found["profiles"])


def judge_local(files: LocalFiles, now: dt.datetime) -> CheckResult:
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name, target = "ca local", str(files.directory)
    owner_fix = f"let the app's user read {files.directory}/ca.pem and ca-key.pem (the key stays 0600)"
    if files.error:
        return failed(name, files.error, owner_fix, target)
    missing = [f for f, data in (("ca.pem", files.certificate), ("ca-key.pem", files.key)) if data is None]
    if missing:
        return failed(
            name,
            f"no {' and no '.join(missing)} in {files.directory}: the first renewal would make a new CA nothing trusts",
            "point CERTLC_LOCAL_CA_DIR at the CA's folder (certlc local up makes one in .local/stack/ca)",
            target,
        )
    try:
        certificate = x509.load_pem_x509_certificate(files.certificate or b"")
        key = serialization.load_pem_private_key(files.key or b"", password=None)
    except (ValueError, TypeError) as exc:
        return failed(name, f"the CA's files do not load: {one_line(exc)}", "restore ca.pem and ca-key.pem", target)
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != certificate.public_key().public_bytes(*public):
        return failed(name, "ca-key.pem is not the key of ca.pem", "restore the matching ca.pem and ca-key.pem", target)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return failed(
            name,
            f"the CA certificate is not valid now ({certificate.not_valid_after_utc:%Y-%m-%d} end)",
            "renew the local CA",
            target,
        )
    if files.profiles is not None:
        try:
            if not isinstance(json.loads(files.profiles), dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return failed(name, f"profiles.json is not valid: {one_line(exc)}", "fix profiles.json", target)
    subject = certificate.subject.rfc4514_string()
    return passed(
        name, f"{subject}: certificate and key readable, valid to {certificate.not_valid_after_utc:%Y-%m-%d}", target
    )


# -- cfssl ------------------------------------------------------------------------------------------------------


def probe_cfssl(env: Mapping[str, str], timeout: float) -> tuple[Answer, str]:
    url = (env.get("CERTLC_CFSSL_URL") or "").strip().rstrip("/")
    if not url:
        return Answer(code="Config", message="CERTLC_CFSSL_URL is not set"), ""
    info = f"{url}/api/v1/cfssl/info"
    verify = verify_for(env, "CERTLC_CFSSL_CA_BUNDLE")
    if isinstance(verify, Answer):
        return verify, info
    return http("POST", info, timeout=timeout, verify=verify, json={}), info


def judge_cfssl(answer: Answer, target: str) -> CheckResult:
    name = "ca cfssl"
    if answer.code == "Config":
        return failed(
            name, answer.message, answer.fix or "set CERTLC_CFSSL_URL to the cfssl serve / multirootca base URL"
        )
    if answer.unreachable:
        return failed(
            name, answer.describe(), "check CERTLC_CFSSL_URL and that cfssl serve runs and is reachable", target
        )
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.ok and body.get("success") and isinstance(body.get("result"), dict) and body["result"].get("certificate"):
        return passed(name, "info answers with the signing CA's certificate", target)
    if answer.status == 404:
        return failed(
            name, f"no cfssl API here ({answer.describe()})", "CERTLC_CFSSL_URL must be cfssl's base URL", target
        )
    errors = "; ".join(str(e.get("message")) for e in body.get("errors") or [] if isinstance(e, dict))
    return failed(
        name, f"info failed: {answer.describe()}" + (f" ({errors})" if errors else ""), "check cfssl's log", target
    )


# -- ACME -------------------------------------------------------------------------------------------------------


def probe_acme(env: Mapping[str, str], timeout: float) -> tuple[Answer, Mapping[str, str], bytes | None]:
    """The directory, the settings, and the account key's bytes: the setting's PEM itself (a resolved Key Vault
    reference in Azure), or the key file's (None when it does not exist yet)."""
    from renewal.ca.acme import account_key_options
    from renewal.ca.base import CaConfigError
    from renewal.hosting import in_azure

    url = (env.get("CERTLC_ACME_DIRECTORY") or "").strip()
    key: bytes | None = None
    try:
        options = account_key_options(env.get("CERTLC_ACME_ACCOUNT_KEY") or "", azure=in_azure(env))
    except CaConfigError as exc:
        return Answer(code="Config", message=str(exc)), env, None
    if "account_key_pem" in options:
        key = options["account_key_pem"].encode()
    elif options["account_key_path"].exists():
        try:
            key = options["account_key_path"].read_bytes()
        except OSError as exc:
            path = options["account_key_path"]
            return Answer(code="Config", message=f"cannot read {path}: {exc.strerror or exc}"), env, None
    elif not options["create_account_key"]:
        path = options["account_key_path"]
        return (
            Answer(code="Config", message=f"the account key file {path} does not exist (none is made in Azure)"),
            env,
            None,
        )
    if not url:
        return Answer(code="Config", message="CERTLC_ACME_DIRECTORY is not set"), env, key
    verify = verify_for(env, "CERTLC_ACME_CA_BUNDLE")
    if isinstance(verify, Answer):
        return verify, env, key
    return http("GET", url, timeout=timeout, verify=verify), env, key


def judge_acme(answer: Answer, env: Mapping[str, str], key: bytes | None) -> CheckResult:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    name, target = "ca acme", (env.get("CERTLC_ACME_DIRECTORY") or "").strip()
    if answer.code == "Config":
        fix = "set CERTLC_ACME_DIRECTORY and CERTLC_ACME_ACCOUNT_KEY (in Azure a Key Vault reference to the key's PEM)"
        return failed(name, answer.message, answer.fix or fix, target)
    if answer.unreachable:
        return failed(name, answer.describe(), "check CERTLC_ACME_DIRECTORY (and CERTLC_ACME_CA_BUNDLE)", target)
    directory: Any = answer.body if isinstance(answer.body, dict) else {}
    missing = [r for r in ACME_RESOURCES if r not in directory]
    if not answer.ok or missing:
        return failed(
            name,
            f"not an ACME directory ({answer.describe()}; missing {', '.join(missing) or 'nothing'})",
            "CERTLC_ACME_DIRECTORY must be the CA's directory URL (RFC 8555)",
            target,
        )
    meta = directory.get("meta") if isinstance(directory.get("meta"), dict) else {}
    has_eab = bool(env.get("CERTLC_ACME_EAB_KID")) and bool(env.get("CERTLC_ACME_EAB_HMAC_KEY"))
    if meta.get("externalAccountRequired") and not has_eab:
        return failed(
            name,
            "the CA requires external account binding and none is set",
            "set CERTLC_ACME_EAB_KID and CERTLC_ACME_EAB_HMAC_KEY to what the CA issued",
            target,
        )
    if key is not None:
        try:
            loaded = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as exc:
            loaded, problem = None, one_line(exc)
        else:
            problem = "" if isinstance(loaded, ec.EllipticCurvePrivateKey) else "it is not an EC key"
        if problem:
            return failed(name, f"the account key does not load: {problem}", "use an EC P-256 PEM key", target)
    state = "account key present" if key is not None else "no account key yet (made on the first order)"
    return passed(name, f"directory answers; {state}", target)


# -- AD CS ------------------------------------------------------------------------------------------------------


def probe_adcs(env: Mapping[str, str], timeout: float) -> tuple[Answer, str]:
    server = (env.get("CERTLC_ADCS_SERVER") or "").strip().removeprefix("https://").split("/", 1)[0]
    method = (env.get("CERTLC_ADCS_AUTH") or "ntlm").strip().lower()
    username, password = env.get("CERTLC_ADCS_USERNAME") or "", env.get("CERTLC_ADCS_PASSWORD") or ""
    url = f"https://{server}/certsrv/" if server else ""
    problem = ""
    if not server:
        problem = "CERTLC_ADCS_SERVER is not set"
    elif password.startswith(KEYVAULT_REFERENCE) or username.startswith(KEYVAULT_REFERENCE):
        problem = "the AD CS credentials are an unresolved Key Vault reference here"
    else:
        problem = credentials_problem(method, username, password) or ""
    if problem:
        return Answer(code="Config", message=problem), url
    options: dict[str, Any] = {}
    if method == "kerberos":
        try:
            from renewal.ca.adcs_kerberos import KerberosAuth
        except ImportError:
            return Answer(
                code="Config", message="Kerberos needs the worker's kerberos extra (requirements-kerberos.txt)"
            ), url
        options["auth"] = KerberosAuth(username or None)
    elif method == "basic":
        options["auth"] = (username, password)
    elif method == "cert":
        options["cert"] = (username, password)
    else:
        try:
            from requests_ntlm import HttpNtlmAuth
        except ImportError:
            return Answer(code="Config", message="NTLM needs the requests-ntlm package"), url
        options["auth"] = HttpNtlmAuth(username, password)
    verify = verify_for(env, "CERTLC_ADCS_CA_BUNDLE")
    if isinstance(verify, Answer):
        return verify, url
    return http("GET", url, timeout=timeout, verify=verify, **options), url


def judge_adcs(answer: Answer, target: str) -> CheckResult:
    name = "ca adcs"
    if answer.code == "Config":
        fix = "set the CERTLC_ADCS_* settings (docs/adcs.md); Key Vault references resolve only in the Functions host"
        return failed(name, answer.message, answer.fix or fix, target)
    if answer.unreachable:
        return failed(name, answer.describe(), "check CERTLC_ADCS_SERVER (and CERTLC_ADCS_CA_BUNDLE)", target)
    if answer.status == 401:
        return failed(
            name,
            f"the credentials were refused ({answer.describe()})",
            "check CERTLC_ADCS_AUTH, CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD (the enrollment account)",
            target,
        )
    if answer.ok and ADCS_MARKER in str(answer.body):
        return passed(name, "web enrollment answers and accepts the credentials", target)
    return failed(
        name,
        f"not AD CS web enrollment ({answer.describe()})",
        "CERTLC_ADCS_SERVER must be the host[:port] serving /certsrv",
        target,
    )
