"""``certlc doctor`` against the local stack, through the real entry point: a healthy deployment, then one
broken part at a time, each reported on its own line with its fix and exit code 1."""

from __future__ import annotations

import json

import pytest

from tests.doctor.conftest import DoctorRun
from tests.environment import without_certlc_settings

CHECKS = [
    "vault kv1",
    "vault kv2",
    "queue {q}",
    "queue {q}-failed",
    "queue {q}-poison",
    "lock container {q}-locks",
    "sweep heartbeat",
    "logs ingestion",
]
CAS = ["ca local", "ca adcs", "ca cfssl", "ca acme"]
BUNDLES = [f"trust bundle CERTLC_{s}_CA_BUNDLE" for s in ("KEYVAULT", "LOGS", "ACME", "ADCS")]  # the ones set


def names(deployment):
    return [c.format(q=deployment.queue_name) for c in CHECKS] + CAS + BUNDLES


def only_failure(run, name, *, also: tuple[str, ...] = ()):
    """Exactly one failing line, the one for ``name`` (and those of ``also``, which read the same thing); returns it."""
    line = run.line(name)
    assert line.startswith("FAIL"), run.out
    assert all(run.line(other).startswith("FAIL") for other in also), run.out
    assert sum(line.startswith("FAIL") for line in run.lines) == 1 + len(also), run.out
    assert run.code == 1, run.out
    return line


def test_a_healthy_deployment_passes_every_check(deployment, doctor):
    run = doctor(deployment.env)

    assert run.code == 0, run.out + run.err
    for name in names(deployment):
        assert run.line(name).startswith("ok    "), run.out
    assert "list and get certificates (read doctor-" in run.line("vault kv1")
    assert run.lines[-1] == f"all {len(names(deployment))} checks passed"
    assert "fix:" not in run.out
    assert run.err == ""


def test_json_output_has_every_check_and_the_verdict(deployment, doctor):
    run = doctor(deployment.env, "-o", "json")

    document = json.loads(run.out)
    assert run.code == 0
    assert document["ok"] is True
    assert [c["name"] for c in document["checks"]] == names(deployment)
    assert all(c["ok"] and c["fix"] == "" and c["target"] for c in document["checks"])
    assert json.loads(doctor(deployment.env, "--json").out)["ok"] is True


def test_verbose_shows_each_target(deployment, doctor):
    run = doctor(deployment.env, "-v")

    assert run.code == 0
    assert f"[{deployment.keyvault.vault_urls['kv1']}, " in run.line("vault kv1")
    assert f"[{deployment.env['CERTLC_CFSSL_URL']}/api/v1/cfssl/info, " in run.line("ca cfssl")


def test_the_checks_write_nothing(deployment, doctor, kv_control):
    """Key Vault sees only GETs, the Logs emulator stores no row, the queues and the lock container stay empty."""
    kv_control.clear_requests()
    rows_before = len(deployment.logs.rows())
    calls_before = len(deployment.logs.requests())

    assert doctor(deployment.env).code == 0

    methods = {r["method"] for r in kv_control.requests() if r["vault"] in ("kv1", "kv2")}
    assert methods == {"GET"}
    assert len(deployment.logs.rows()) == rows_before
    probes = deployment.logs.requests()[calls_before:]
    assert [(p["status"], p["rows"]) for p in probes] == [(400, 0)]
    assert all(q.get_queue_properties().approximate_message_count == 0 for q in deployment.queues)
    assert list(deployment.lock_container.list_blobs()) == []
    assert deployment.lock_container.get_container_properties().lease.state == "available"  # no lease taken


# -- Key Vault --------------------------------------------------------------------------------------------------


def test_a_token_with_no_role_names_the_missing_role(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_LOCAL_TOKEN": "certlc-local-none"})

    for vault in ("kv1", "kv2"):
        line = run.line(f"vault {vault}")
        assert line.startswith(f"FAIL  vault {vault}  cannot list certificates: HTTP 403 Forbidden"), line
        assert f"fix: assign the app's identity the 'Key Vault Certificates Officer' role on vault {vault}" in line
        assert "(infra/main.json does)" in line
    assert sum(line.startswith("FAIL") for line in run.lines) == 2
    assert run.code == 1


def test_a_reader_token_is_enough_for_the_read_only_checks(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_LOCAL_TOKEN": "certlc-local-reader"})

    assert run.code == 0, run.out
    assert run.line("vault kv1").startswith("ok")


def test_a_token_the_vault_does_not_know_is_a_401(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_LOCAL_TOKEN": "not-a-token-of-this-tenant"})

    line = run.line("vault kv1")
    assert line.startswith("FAIL  vault kv1  cannot list certificates: HTTP 401 Unauthorized"), line
    assert "fix: the vault refused the token: use the app's managed identity" in line
    assert run.code == 1


def test_a_vault_nothing_listens_for(deployment, doctor, dead_port):
    env = deployment.env | {"CERTLC_VAULTS": f"{deployment.env['CERTLC_VAULTS']},kv9=https://127.0.0.1:{dead_port}"}

    run = doctor(env)

    line = only_failure(run, "vault kv9")
    assert "cannot list certificates: connection refused (nothing listens there)" in line
    assert f"fix: check the URL in CERTLC_VAULTS (kv9=https://127.0.0.1:{dead_port})" in line


def test_a_vault_that_never_answers_costs_the_deadline_not_a_hang(deployment, doctor, silent_port):
    env = deployment.env | {
        "CERTLC_VAULTS": f"kv1={deployment.keyvault.vault_urls['kv1']},kv8=https://127.0.0.1:{silent_port}"
    }

    run = doctor(env, "--timeout", "1")

    line = only_failure(run, "vault kv8")
    assert "cannot list certificates: no answer within 1 s" in line
    assert "fix: check the URL in CERTLC_VAULTS" in line
    assert run.seconds < 15


def test_a_static_token_is_never_sent_to_a_real_vault(deployment, doctor):
    env = deployment.env | {"CERTLC_VAULTS": f"{deployment.env['CERTLC_VAULTS']},contoso-kv"}

    run = doctor(env)

    line = only_failure(run, "vault contoso-kv")
    assert "CERTLC_LOCAL_TOKEN is set but https://contoso-kv.vault.azure.net is not a loopback address" in line
    assert "fix: unset CERTLC_LOCAL_TOKEN: it is for the local emulators" in line


# -- queues -----------------------------------------------------------------------------------------------------


def test_a_missing_queue_is_reported_and_not_created(deployment, doctor):
    poison = deployment.queues[2]
    poison.delete_queue()

    run = doctor(deployment.env)

    name = f"{deployment.queue_name}-poison"
    line = only_failure(run, f"queue {name}")
    assert f"FAIL  queue {name}  does not exist (HTTP 404 QueueNotFound" in line
    assert f"fix: deploy infra/main.json (it creates {name}), or: az storage queue create" in line
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        poison.get_queue_properties()  # the doctor did not create it


def test_queues_behind_a_dead_port(deployment, doctor, dead_port):
    env = deployment.env | {
        "CertlcStorage": deployment.env["CertlcStorage"].replace(
            deployment.env["CertlcStorage"].split("QueueEndpoint=")[1].split(";")[0],
            f"http://127.0.0.1:{dead_port}/devstoreaccount1",
        )
    }

    run = doctor(env)

    for suffix in ("", "-failed", "-poison"):
        line = run.line(f"queue {deployment.queue_name}{suffix}")
        assert line.startswith("FAIL") and "connection refused" in line, line
        assert "fix: check CertlcStorage / CertlcStorage__queueServiceUri" in line
    assert run.code == 1


def test_a_wrong_storage_key(deployment, doctor):
    key = deployment.env["CertlcStorage"].split("AccountKey=")[1].split(";")[0]
    env = deployment.env | {"CertlcStorage": deployment.env["CertlcStorage"].replace(key, "d3Jvbmcta2V5" * 7 + "AA==")}

    run = doctor(env)

    line = run.line(f"queue {deployment.queue_name}")
    assert line.startswith("FAIL") and "HTTP 403 AuthenticationFailed" in line, line
    assert "fix: the storage key or SAS in the connection string is wrong or expired" in line
    assert run.code == 1


def test_no_queue_connection_at_all(deployment, doctor):
    env = {k: v for k, v in deployment.env.items() if k != "CertlcStorage"}

    run = doctor(env)

    line = run.line(f"queue {deployment.queue_name}")
    assert "FAIL" in line and "no queue connection: set CertlcStorage" in line, line
    assert run.code == 1


# -- the renewal lock's container ------------------------------------------------------------------------------


def test_a_missing_lock_container_is_reported_and_not_created(deployment, doctor):
    from azure.core.exceptions import ResourceNotFoundError

    deployment.lock_container.delete_container()

    run = doctor(deployment.env)

    name = deployment.lock_container.container_name
    line = only_failure(run, f"lock container {name}")
    assert f"FAIL  lock container {name}  does not exist (HTTP 404 ContainerNotFound" in line
    assert f"fix: deploy infra/main.json (it creates {name}), or: az storage container create --auth-mode login" in line
    with pytest.raises(ResourceNotFoundError):
        deployment.lock_container.get_container_properties()  # the doctor did not create it


def test_a_wrong_storage_key_fails_the_lock_container_too(deployment, doctor):
    key = deployment.env["CertlcStorage"].split("AccountKey=")[1].split(";")[0]
    env = deployment.env | {"CertlcStorage": deployment.env["CertlcStorage"].replace(key, "d3Jvbmcta2V5" * 7 + "AA==")}

    run = doctor(env)

    line = run.line(f"lock container {deployment.lock_container.container_name}")
    # Azure says AuthenticationFailed, Azurite's blob service AuthorizationFailure; both with this message
    assert line.startswith("FAIL") and "HTTP 403 " in line and "Server failed to authenticate the request" in line
    assert "fix: the storage key or SAS in the connection string is wrong or expired" in line


def test_a_connection_string_without_a_blob_endpoint(deployment, doctor):
    """The emulator's connection strings list their endpoints; one with queues only would send the lock to Azure."""
    connection = deployment.env["CertlcStorage"]
    blob_endpoint = "BlobEndpoint=" + connection.split("BlobEndpoint=")[1].split(";")[0] + ";"

    run = doctor(deployment.env | {"CertlcStorage": connection.replace(blob_endpoint, "")})

    line = only_failure(run, f"lock container {deployment.lock_container.container_name}", also=("sweep heartbeat",))
    assert "CertlcStorage names a QueueEndpoint but no BlobEndpoint" in line
    assert "CertlcStorage names a QueueEndpoint but no BlobEndpoint" in run.line("sweep heartbeat")
    assert "fix: set CertlcStorage (a connection string with a BlobEndpoint) or CertlcStorage__blobServiceUri" in line


def test_a_blob_endpoint_that_never_answers_costs_the_deadline(deployment, doctor, silent_port):
    connection = deployment.env["CertlcStorage"]
    blob_url = connection.split("BlobEndpoint=")[1].split(";")[0]
    env = deployment.env | {
        "CertlcStorage": connection.replace(blob_url, f"http://127.0.0.1:{silent_port}/devstoreaccount1")
    }

    run = doctor(env, "--timeout", "1")

    line = only_failure(run, f"lock container {deployment.lock_container.container_name}", also=("sweep heartbeat",))
    assert "no answer within 1 s" in line
    assert "cannot read the sweep heartbeat from container" in run.line("sweep heartbeat")
    assert "fix: check CertlcStorage / CertlcStorage__blobServiceUri and that this network reaches it" in line
    assert run.seconds < 15


# -- Logs Ingestion ---------------------------------------------------------------------------------------------


def test_a_wrong_dcr_id(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_DCR_IMMUTABLE_ID": "dcr-00000000000000000000000000000000"})

    line = only_failure(run, "logs ingestion")
    assert "no data collection rule dcr-00000000000000000000000000000000 behind this endpoint" in line
    assert "HTTP 404 DataCollectionRuleNotFound" in line
    assert "fix: set CERTLC_DCR_IMMUTABLE_ID to the monitoring deployment's output dcrImmutableId" in line


def test_a_stream_the_rule_does_not_declare(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_DCR_STREAM": "Custom-Other_CL"})

    line = only_failure(run, "logs ingestion")
    assert "the rule does not declare stream Custom-Other_CL" in line
    assert "fix: set CERTLC_DCR_STREAM to the rule's stream (Custom-CertlcStatus_CL" in line


def test_a_logs_token_the_endpoint_refuses(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_LOGS_TOKEN": "wrong"})

    line = only_failure(run, "logs ingestion")
    assert "HTTP 401 InvalidToken" in line
    assert "fix: the endpoint refused the token" in line


def test_logs_ingestion_not_configured(deployment, doctor):
    env = {k: v for k, v in deployment.env.items() if k not in ("CERTLC_DCE_ENDPOINT", "CERTLC_DCR_IMMUTABLE_ID")}

    run = doctor(env)

    line = only_failure(run, "logs ingestion")
    assert "CERTLC_DCE_ENDPOINT and CERTLC_DCR_IMMUTABLE_ID not set" in line
    assert "fix: set CERTLC_DCE_ENDPOINT, CERTLC_DCR_IMMUTABLE_ID" in line


def test_a_logs_endpoint_nothing_listens_on(deployment, doctor, dead_port):
    run = doctor(deployment.env | {"CERTLC_DCE_ENDPOINT": f"https://127.0.0.1:{dead_port}"})

    line = only_failure(run, "logs ingestion")
    assert "connection refused" in line
    assert "fix: check CERTLC_DCE_ENDPOINT (output dceLogsIngestionEndpoint) and the network" in line


# -- CAs --------------------------------------------------------------------------------------------------------


def test_a_cfssl_that_does_not_answer(deployment, doctor, dead_port):
    run = doctor(deployment.env | {"CERTLC_CFSSL_URL": f"http://127.0.0.1:{dead_port}"})

    line = only_failure(run, "ca cfssl")
    assert "connection refused (nothing listens there)" in line
    assert "fix: check CERTLC_CFSSL_URL and that cfssl serve runs and is reachable" in line


def test_a_cfssl_that_hangs_costs_the_deadline(deployment, doctor, silent_port):
    run = doctor(deployment.env | {"CERTLC_CFSSL_URL": f"http://127.0.0.1:{silent_port}"}, "--timeout", "1")

    line = only_failure(run, "ca cfssl")
    assert "no answer within 1 s" in line
    assert run.seconds < 15


def test_an_acme_directory_that_does_not_answer(deployment, doctor, dead_port):
    run = doctor(deployment.env | {"CERTLC_ACME_DIRECTORY": f"https://127.0.0.1:{dead_port}/dir"})

    line = only_failure(run, "ca acme")
    assert "connection refused" in line
    assert "fix: check CERTLC_ACME_DIRECTORY (and CERTLC_ACME_CA_BUNDLE)" in line


def test_an_acme_directory_that_is_not_trusted(deployment, doctor):
    env = {k: v for k, v in deployment.env.items() if k != "CERTLC_ACME_CA_BUNDLE"}

    run = doctor(env)

    line = only_failure(run, "ca acme")
    assert "TLS certificate not trusted" in line


def test_adcs_refuses_the_credentials(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_ADCS_PASSWORD": "not-the-password"})

    line = only_failure(run, "ca adcs")
    assert "the credentials were refused (HTTP 401" in line
    assert "fix: check CERTLC_ADCS_AUTH, CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD" in line


def test_adcs_that_does_not_answer(deployment, doctor, dead_port):
    run = doctor(deployment.env | {"CERTLC_ADCS_SERVER": f"127.0.0.1:{dead_port}"})

    line = only_failure(run, "ca adcs")
    assert "connection refused" in line
    assert "fix: check CERTLC_ADCS_SERVER" in line


def test_a_local_ca_folder_without_the_ca(deployment, doctor, tmp_path):
    empty = tmp_path / "no-ca"
    empty.mkdir()

    run = doctor(deployment.env | {"CERTLC_LOCAL_CA_DIR": str(empty)})

    line = only_failure(run, "ca local")
    assert f"no ca.pem and no ca-key.pem in {empty}" in line
    assert "fix: point CERTLC_LOCAL_CA_DIR at the CA's folder" in line
    assert list(empty.iterdir()) == []  # the doctor did not make a CA


def test_only_the_configured_cas_are_checked(deployment, doctor):
    env = {
        k: v
        for k, v in deployment.env.items()
        if not k.startswith(("CERTLC_CFSSL", "CERTLC_ACME", "CERTLC_ADCS", "CERTLC_LOCAL_CA"))
    }
    env |= {"CERTLC_CA": "cfssl", "CERTLC_CFSSL_URL": deployment.env["CERTLC_CFSSL_URL"]}

    run = doctor(env)

    assert run.code == 0, run.out
    assert [line[6:].split()[:2] for line in run.lines if line.startswith("ok    ca")] == [["ca", "cfssl"]]


def test_an_unknown_default_adapter(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_CA": "venafi"})

    line = only_failure(run, "ca venafi")
    assert "fix: set CERTLC_CA to local, adcs, cfssl or acme" in line


# -- configuration mistakes: exit 2 -----------------------------------------------------------------------------


def test_no_vaults_is_a_configuration_mistake(doctor, tmp_path):
    run = doctor({"CertlcStorage": "UseDevelopmentStorage=true"})

    assert run.code == 2
    assert run.out == ""
    assert "certlc: CERTLC_VAULTS is not set" in run.err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--timeout", "0"], {}, "--timeout='0' must be more than 0 and at most 120 seconds"),
        (["--timeout", "soon"], {"CERTLC_DOCTOR_TIMEOUT": "5"}, "--timeout='soon' is not a number of seconds"),
        ([], {"CERTLC_DOCTOR_TIMEOUT": "soon"}, "CERTLC_DOCTOR_TIMEOUT='soon' is not a number"),
    ],
)
def test_a_bad_timeout_is_a_usage_mistake(doctor, args, env, message):
    run = doctor({"CERTLC_VAULTS": "kv1", **env}, *args)

    assert run.code == 2
    assert message in run.err


def test_an_unknown_output_format_is_a_usage_mistake(doctor):
    run = doctor({"CERTLC_VAULTS": "kv1"}, "-o", "yaml")

    assert run.code == 2
    assert "invalid choice: 'yaml'" in run.err


def test_the_command_is_listed(capsys):
    from certlc.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "doctor" in capsys.readouterr().out


def test_the_installed_command_in_its_own_process(deployment, tmp_path):
    """``python -m certlc doctor``: the exit code and the line come from a real process, with no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": deployment.env | {"CERTLC_LOCAL_TOKEN": "certlc-local-none"}}))
    clean = without_certlc_settings()
    repo = Path(__file__).resolve().parents[2]

    result = subprocess.run(
        [sys.executable, "-m", "certlc", "--settings", str(settings), "doctor", "--timeout", "3"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1:3] for line in failing] == [["vault", "kv1"], ["vault", "kv2"]], result.stdout
    assert all("'Key Vault Certificates Officer'" in line for line in failing), result.stdout


def test_an_acme_account_key_given_as_its_pem_is_checked_like_a_file(deployment, doctor, acme_account_key):
    """In Azure the setting is a Key Vault reference the platform resolves to the PEM itself."""
    pem = acme_account_key.read_text()
    passing = doctor(deployment.env | {"CERTLC_ACME_ACCOUNT_KEY": pem})
    assert passing.line("ca acme").startswith("ok"), passing.out
    assert "account key present" in passing.line("ca acme")

    broken = doctor(deployment.env | {"CERTLC_ACME_ACCOUNT_KEY": "-----BEGIN PRIVATE KEY-----\nnot a key\n"})
    assert "the account key does not load" in only_failure(broken, "ca acme")


def test_an_unresolved_key_vault_reference_for_the_acme_key_says_what_to_grant(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_ACME_ACCOUNT_KEY": "@Microsoft.KeyVault(SecretUri=https://kv/secrets/a)"})

    assert "Key Vault Secrets User" in only_failure(run, "ca acme")


def test_adcs_kerberos_takes_no_password(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_ADCS_AUTH": "kerberos"})

    assert "CERTLC_ADCS_PASSWORD is not used with Kerberos" in only_failure(run, "ca adcs")


# -- trust bundles ----------------------------------------------------------------------------------------------


def pem_text(env, setting):
    """A bundle setting's file as the PEM text itself: what an Azure app setting (or Key Vault secret) holds."""
    from pathlib import Path

    return Path(env[setting]).read_text()


def certificates_in(text):
    from cryptography import x509

    return x509.load_pem_x509_certificates(text.encode())


def test_trust_bundles_given_as_pem_text_pass_and_the_probes_trust_them(deployment, doctor):
    """The vault, Logs Ingestion, ACME and AD CS probes reach their TLS servers only by trusting the text."""
    bundles = ("CERTLC_KEYVAULT_CA_BUNDLE", "CERTLC_LOGS_CA_BUNDLE", "CERTLC_ACME_CA_BUNDLE", "CERTLC_ADCS_CA_BUNDLE")
    texts = {setting: pem_text(deployment.env, setting) for setting in bundles}

    run = doctor(deployment.env | texts)

    assert run.code == 0, run.out
    for setting, text in texts.items():
        certificates = certificates_in(text)
        earliest = min(c.not_valid_after_utc for c in certificates)
        count = f"{len(certificates)} certificate{'s' if len(certificates) > 1 else ''}"
        line = run.line(f"trust bundle {setting}")
        assert line.startswith(f"ok    trust bundle {setting}  PEM text, {count}, earliest expiry {earliest:%Y-%m-%d}")
    for name in ("vault kv1", "vault kv2", "logs ingestion", "ca acme", "ca adcs"):
        assert run.line(name).startswith("ok    "), run.out
    assert "-----BEGIN" not in run.out


def test_an_expired_certificate_in_a_bundle_fails_its_line(deployment, doctor):
    import datetime as dt

    import trustme
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.fixtures.pki import issued

    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    _, old = issued(trustme.CA(), "old-root.corp.test", long_ago, long_ago + dt.timedelta(days=30))
    text = pem_text(deployment.env, "CERTLC_ADCS_CA_BUNDLE") + old.public_bytes(Encoding.PEM).decode()

    run = doctor(deployment.env | {"CERTLC_ADCS_CA_BUNDLE": text})

    line = only_failure(run, "trust bundle CERTLC_ADCS_CA_BUNDLE")
    assert "  CN=old-root.corp.test," in line and " in it expired on 2020-01-31  " in line, line
    assert "fix: replace it in CERTLC_ADCS_CA_BUNDLE with the CA's current certificate" in line


def test_a_bundle_file_without_a_certificate_fails_its_line(deployment, doctor, tmp_path):
    junk = tmp_path / "cfssl-ca.pem"
    junk.write_text("not a certificate\n")

    run = doctor(deployment.env | {"CERTLC_CFSSL_CA_BUNDLE": str(junk)})  # cfssl answers over HTTP: unused there

    line = only_failure(run, "trust bundle CERTLC_CFSSL_CA_BUNDLE")
    assert f"{junk} holds no certificate that parses" in line
    assert "fix: put the CA certificates in it as PEM, or set CERTLC_CFSSL_CA_BUNDLE to their PEM text" in line


def test_a_bundle_path_that_does_not_exist_fails_the_bundle_and_the_ca_that_needs_it(deployment, doctor, tmp_path):
    missing = tmp_path / "gone.pem"

    run = doctor(deployment.env | {"CERTLC_ADCS_CA_BUNDLE": str(missing)})

    problem = f"CERTLC_ADCS_CA_BUNDLE: cannot read the file {missing} (No such file or directory)"
    fix = "fix: set the path of a PEM file this process can read, or the CA certificates' PEM text itself"
    for name in ("trust bundle CERTLC_ADCS_CA_BUNDLE", "ca adcs"):
        line = run.line(name)
        assert line.startswith("FAIL") and problem in line and fix in line, line
    assert sum(line.startswith("FAIL") for line in run.lines) == 2
    assert run.code == 1


def test_trust_bundles_in_its_own_process(deployment, tmp_path):
    """``python -m certlc doctor`` with PEM text, garbage and an unresolved Key Vault reference: a line for each,
    the text never shown, and the private copies of the text gone when the process ends."""
    import subprocess
    import sys
    from pathlib import Path

    garbage = "-----BEGIN CERTIFICATE-----\nc2VjcmV0LWxvb2tpbmcgYnV0IG5vdCBhIGNlcnQ=\n-----END CERTIFICATE-----\n"
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-ops.vault.azure.net/secrets/smtp-ca/)"
    env = deployment.env | {
        "CERTLC_ADCS_CA_BUNDLE": pem_text(deployment.env, "CERTLC_ADCS_CA_BUNDLE"),
        "CERTLC_KEYVAULT_CA_BUNDLE": pem_text(deployment.env, "CERTLC_KEYVAULT_CA_BUNDLE"),
        "CERTLC_WEBHOOK_CA_BUNDLE": garbage,
        "CERTLC_SMTP_CA_BUNDLE": reference,
    }
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": env}))
    temp = tmp_path / "temp"
    temp.mkdir()
    repo = Path(__file__).resolve().parents[2]

    result = subprocess.run(
        [sys.executable, "-m", "certlc", "--settings", str(settings), "doctor", "--timeout", "3", "-v"],
        cwd=tmp_path,
        env={**without_certlc_settings(), "PYTHONPATH": str(repo), "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    run = DoctorRun(result.returncode, result.stdout, result.stderr, 0)
    assert run.code == 1, run.out + run.err
    assert "Traceback" not in run.err, run.err
    failing = [line for line in run.lines if line.startswith("FAIL")]
    assert [line.split()[3] for line in failing] == ["CERTLC_SMTP_CA_BUNDLE", "CERTLC_WEBHOOK_CA_BUNDLE"], run.out
    for name in ("vault kv1", "vault kv2", "ca adcs"):
        assert run.line(name).startswith("ok    "), run.out
    assert run.line("trust bundle CERTLC_ADCS_CA_BUNDLE").startswith(
        "ok    trust bundle CERTLC_ADCS_CA_BUNDLE  PEM text, 1 certificate, earliest expiry "
    )
    webhook, smtp = run.line("trust bundle CERTLC_WEBHOOK_CA_BUNDLE"), run.line("trust bundle CERTLC_SMTP_CA_BUNDLE")
    assert "CERTLC_WEBHOOK_CA_BUNDLE holds PEM text that does not parse as certificates  fix: give the CA" in webhook
    assert "CERTLC_SMTP_CA_BUNDLE is a Key Vault reference the platform did not resolve" in smtp
    assert "fix: give the app's identity Key Vault Secrets User on that secret" in smtp
    assert "[CERTLC_SMTP_CA_BUNDLE, " in smtp  # -v: the setting is the target, not its value
    assert "[CERTLC_ADCS_CA_BUNDLE, " in run.line("trust bundle CERTLC_ADCS_CA_BUNDLE")
    assert "c2VjcmV0" not in run.out and "kv-ops" not in run.out  # neither the text nor the reference is shown
    assert list(temp.iterdir()) == []  # the private copies of the PEM text went with the process
