"""``certlc doctor``'s checks of the Function App itself, through the real entry point, against the App Service
emulator: the functions it lists are what the worker's indexing found in the published folder, and each Key Vault
reference's status is what the Key Vault emulator answered the app's identity."""

from __future__ import annotations

import pytest

from tests.doctor.conftest import REPOSITORY

FUNCTIONS = "event, renew, sweep, ingest"
SECOND_PASS = (
    "func azure functionapp publish {name} --python (or a zip deploy with a remote build), then run certlc doctor "
    "again; only once 'app functions' is ok deploy infra/main.json again with createEventSubscriptions=true"
)
# One function the Python worker refuses (a PEP 585 alias inside Out) makes it load none of the app's functions.
REFUSED_APP = """import azure.functions as func

app = func.FunctionApp()


@app.function_name("event")
@app.event_grid_trigger(arg_name="event")
@app.queue_output(arg_name="out", queue_name="q", connection="CertlcStorage")
def event(event: func.EventGridEvent, out: func.Out[list[str]]) -> None:
    out.set([])


@app.function_name("renew")
@app.queue_trigger(arg_name="msg", queue_name="q", connection="CertlcStorage")
def renew(msg: func.QueueMessage) -> None:
    pass
"""


def failing(run):
    """The names of the failing checks, in order."""
    return [line[6:].split("  ", 1)[0] for line in run.lines if line.startswith("FAIL")]


def reference(keyvault, secret, vault="kv1", tail=""):
    return f"@Microsoft.KeyVault(SecretUri={keyvault.vault_urls[vault]}/secrets/{secret}{tail})"


def test_a_published_app_passes_and_the_doctor_only_reads_every_page(deployed_app, doctor):
    indexed = deployed_app.publish()
    before = len(deployed_app.emulator.arm.requests)

    run = doctor(deployed_app.env)

    assert [f.name for f in indexed.functions] == ["event", "renew", "sweep", "ingest"], indexed.error
    assert run.code == 0, run.out + run.err
    assert run.line("app functions") == (
        f"ok    app functions  all 4 functions indexed ({FUNCTIONS}): the second pass may create the Event Grid "
        "subscriptions"
    )
    assert run.line("key vault references") == (
        "ok    key vault references  none (no app setting is a Key Vault reference)"
    )
    assert run.err == ""
    requests = deployed_app.emulator.arm.requests[before:]
    assert {r["method"] for r in requests} == {"GET"}
    pages = [r["query"] for r in requests if r["path"] == f"{deployed_app.site.arm_id}/functions"]
    assert [(p["api-version"], p.get("$skipToken")) for p in pages] == [("2024-04-01", None), ("2024-04-01", "2")]


def test_the_functions_expected_are_those_the_worker_indexes_from_function_app_py():
    """The doctor reads the blueprints function_app.py registers; a blueprint added there and not here fails."""
    from localazure.emulators.appservice.indexing import index

    from certlc.doctor.deployment import expected_functions

    indexed = index(REPOSITORY)
    triggers = {f.name: next(b["type"] for b in f.bindings if b["type"].endswith("Trigger")) for f in indexed.functions}

    assert expected_functions() == triggers
    assert triggers["event"] == "eventGridTrigger"


def test_an_app_with_no_code_yet_says_to_publish_before_the_second_pass(deployed_app, doctor):
    run = doctor(deployed_app.env)

    assert run.code == 1
    assert failing(run) == ["app functions"], run.out
    assert run.line("app functions") == (
        "FAIL  app functions  function event is not listed: the code is not published or not indexed yet "
        f"(listed: none; expected: {FUNCTIONS})  fix: publish the code: "
        + SECOND_PASS.format(name=deployed_app.site.name)
    )


def test_an_app_whose_function_app_py_the_worker_refuses_lists_nothing(deployed_app, doctor, tmp_path):
    (tmp_path / "function_app.py").write_text(REFUSED_APP)

    indexed = deployed_app.publish(tmp_path)
    run = doctor(deployed_app.env)

    assert indexed.functions == ()
    assert indexed.error.startswith("cannot load the event function: binding out has invalid non-type annotation")
    assert failing(run) == ["app functions"], run.out
    line = run.line("app functions")
    assert "function event is not listed: the code is not published or not indexed yet (listed: none;" in line
    assert f"fix: publish the code: {SECOND_PASS.format(name=deployed_app.site.name)}" in line


def test_an_app_that_indexes_only_some_functions_names_the_missing_ones(deployed_app, doctor, tmp_path):
    (tmp_path / "function_app.py").write_text(REFUSED_APP.replace("list[str]", "str"))
    deployed_app.publish(tmp_path)

    line = doctor(deployed_app.env).line("app functions")

    assert line.startswith("FAIL  app functions  not indexed: sweep, ingest (listed: event, renew)  fix: publish this ")


def test_resolved_references_in_both_forms_pass(deployed_app, doctor, keyvault_emulator, certificate_in_kv1):
    deployed_app.publish()
    deployed_app.site.settings.update(
        {
            "CERTLC_SMTP_PASSWORD": reference(keyvault_emulator, certificate_in_kv1),
            "CERTLC_QUEUE_NAME": "certlc-renewals",  # a plain value is no reference
            "CERTLC_ADCS_PASSWORD": f"@Microsoft.KeyVault(VaultName=kv1;SecretName={certificate_in_kv1})",
            "CERTLC_ACME_EAB_HMAC_KEY": reference(keyvault_emulator, certificate_in_kv1, tail="/"),
        }
    )

    run = doctor(deployed_app.env)

    assert run.code == 0, run.out
    assert run.line("key vault references") == (
        "ok    key vault references  3 resolved (CERTLC_SMTP_PASSWORD, CERTLC_ADCS_PASSWORD, CERTLC_ACME_EAB_HMAC_KEY)"
    )


def test_a_reference_to_a_missing_secret_names_it(deployed_app, doctor, keyvault_emulator, certificate_in_kv1):
    deployed_app.publish()
    deployed_app.site.settings.update(
        {
            "CERTLC_SMTP_PASSWORD": reference(keyvault_emulator, certificate_in_kv1),
            "CERTLC_ACME_ACCOUNT_KEY": "@Microsoft.KeyVault(VaultName=kv1;SecretName=acme-account-key)",
        }
    )

    run = doctor(deployed_app.env)

    assert failing(run) == ["key vault references"], run.out
    assert run.line("key vault references") == (
        "FAIL  key vault references  1 of 2 not resolved: CERTLC_ACME_ACCOUNT_KEY SecretNotFound (secret "
        "acme-account-key in vault kv1)  fix: create secret acme-account-key in vault kv1 (az keyvault secret set), "
        "or correct CERTLC_ACME_ACCOUNT_KEY's reference"
    )


def test_a_reference_the_apps_identity_may_not_read_says_what_to_grant(
    deployed_app, doctor, keyvault_emulator, certificate_in_kv1
):
    deployed_app.publish()
    deployed_app.site.identity_token = "certlc-local-reader"  # certificates, no secrets
    deployed_app.site.settings["CERTLC_ADCS_PASSWORD"] = reference(keyvault_emulator, certificate_in_kv1)

    run = doctor(deployed_app.env)

    assert failing(run) == ["key vault references"], run.out
    assert run.line("key vault references") == (
        f"FAIL  key vault references  1 of 1 not resolved: CERTLC_ADCS_PASSWORD AccessToKeyVaultDenied (secret "
        f"{certificate_in_kv1} in vault kv1)  fix: grant the app's identity 'Key Vault Secrets User' on secret "
        f'{certificate_in_kv1}: az role assignment create --role "Key Vault Secrets User" --assignee-object-id '
        "<principalId of the identity the app resolves references with (the template's principalId output)> "
        f"--assignee-principal-type ServicePrincipal --scope $(az keyvault show -n kv1 --query id -o tsv)/secrets/"
        f"{certificate_in_kv1}"
    )


def test_arm_nothing_listens_on_is_one_line_each(deployed_app, doctor, dead_port):
    run = doctor(deployed_app.env | {"CERTLC_ARM_ENDPOINT": f"https://127.0.0.1:{dead_port}"})

    assert failing(run) == ["app functions", "key vault references"], run.out
    assert "cannot read its functions: connection refused (nothing listens there)" in run.line("app functions")
    assert f"fix: check CERTLC_ARM_ENDPOINT (https://127.0.0.1:{dead_port}; CERTLC_ARM_CA_BUNDLE for a private CA)" in (
        run.line("key vault references")
    )


def test_arm_that_never_answers_costs_the_deadline_not_a_hang(deployed_app, doctor, silent_port):
    run = doctor(deployed_app.env | {"CERTLC_ARM_ENDPOINT": f"https://127.0.0.1:{silent_port}"}, "--timeout", "1")

    assert failing(run) == ["app functions", "key vault references"], run.out
    assert "cannot read its functions: no answer within 1 s" in run.line("app functions")
    assert "cannot read its Key Vault references: no answer within 1 s" in run.line("key vault references")
    assert run.seconds < 15


def test_an_app_arm_does_not_know(deployed_app, doctor):
    missing = deployed_app.site.arm_id.replace("/sites/certlc-", "/sites/gone-")

    run = doctor(deployed_app.env | {"CERTLC_FUNCTION_APP_ID": missing})

    line, name = run.line("app functions"), missing.rsplit("/", 1)[1]
    assert line.startswith(f"FAIL  app functions  no Function App {name} in resource group rg-certlc of "), line
    assert "(HTTP 404 ResourceNotFound: " in line
    assert f"fix: check --app / CERTLC_FUNCTION_APP_ID: az functionapp show -g rg-certlc -n {name} --query id" in line


def test_an_identity_without_a_role_on_the_app_is_told_which(deployed_app, doctor):
    deployed_app.publish()

    run = doctor(deployed_app.env | {"CERTLC_LOCAL_TOKEN": "certlc-local-none"})  # the vaults refuse it too

    for name, what in (("app functions", "its functions"), ("key vault references", "its Key Vault references")):
        line = run.line(name)
        assert line.startswith(f"FAIL  {name}  cannot read {what}: HTTP 403 AuthorizationFailed"), line
        assert (
            "fix: give the identity running certlc doctor Reader (or Website Contributor) on the app: az role "
            f"assignment create --role Reader --assignee <user or principal> --scope {deployed_app.site.arm_id}"
        ) in line


def test_a_static_token_is_never_sent_to_azure_resource_manager(deployed_app, doctor):
    env = {k: v for k, v in deployed_app.env.items() if k != "CERTLC_ARM_ENDPOINT"}

    run = doctor(env)

    line = run.line("app functions")
    assert "CERTLC_LOCAL_TOKEN is set but https://management.azure.com is not a loopback address" in line
    assert "fix: unset CERTLC_LOCAL_TOKEN to read the app as your az login" in line


def test_the_app_option_names_the_app_and_wins_over_the_setting(deployed_app, doctor):
    deployed_app.publish()
    wrong = deployed_app.site.arm_id.replace("/sites/certlc-", "/sites/other-")

    run = doctor(deployed_app.env | {"CERTLC_FUNCTION_APP_ID": wrong}, "--app", deployed_app.site.arm_id)

    assert run.code == 0, run.out
    assert run.line("app functions").startswith("ok    app functions  all 4 functions indexed")


def test_without_an_app_id_the_app_is_not_checked(deployment, doctor):
    run = doctor(deployment.env)

    assert run.code == 0, run.out
    assert not [line for line in run.lines if "app functions" in line or "key vault references" in line]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--app", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan"],
            {},
            "certlc: --app='/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan' is not a "
            "Function App resource id: /subscriptions/SUBSCRIPTION/resourceGroups/GROUP/providers/Microsoft.Web/sites/"
            "NAME (az functionapp show -g GROUP -n NAME --query id -o tsv)\n",
        ),
        ([], {"CERTLC_FUNCTION_APP_ID": "certlc-app"}, "certlc: CERTLC_FUNCTION_APP_ID='certlc-app' is not a "),
    ],
)
def test_a_malformed_app_id_is_a_usage_mistake(doctor, args, env, message):
    run = doctor({"CERTLC_VAULTS": "kv1", **env}, *args)

    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith(message) and run.err.count("\n") == 1, run.err


def test_arm_behind_a_ca_the_doctor_does_not_trust(deployed_app, doctor):
    env = {k: v for k, v in deployed_app.env.items() if k != "CERTLC_ARM_CA_BUNDLE"}

    line = doctor(env).line("app functions")

    assert line.startswith("FAIL  app functions  cannot read its functions: TLS certificate not trusted"), line
    assert "fix: check CERTLC_ARM_ENDPOINT (https://127.0.0.1:" in line
    assert "CERTLC_ARM_CA_BUNDLE for a private CA" in line


def test_where_the_apps_settings_are_not_at_hand_the_app_option_checks_the_app_alone(deployed_app, doctor):
    """The shell that deploys (infra/README.md's Deploy block) has no CERTLC_VAULTS: the wait still works there."""
    env = {k: v for k, v in deployed_app.env.items() if k.startswith(("CERTLC_ARM_", "CERTLC_LOCAL_TOKEN"))}
    args = ("--app", deployed_app.site.arm_id)

    before = doctor(env, *args)
    deployed_app.publish()
    after = doctor(env, *args)

    assert before.code == 1 and failing(before) == ["app functions"], before.out
    assert after.code == 0, after.out
    assert [line[6:].split("  ")[0] for line in after.lines[:-1]] == ["app functions", "key vault references"]
    assert after.lines[-1] == "all 2 checks passed"


def test_a_next_page_on_another_host_is_not_followed_with_the_token(deployed_app, doctor, monkeypatch):
    deployed_app.publish()
    monkeypatch.setattr(deployed_app.emulator.arm, "base_url", "https://127.0.0.2:9")  # its nextLinks point there

    line = doctor(deployed_app.env).line("app functions")

    assert line.startswith("FAIL  app functions  cannot read its functions: the next page is on another host: "), line
    assert "https://127.0.0.2:9/subscriptions/" in line
