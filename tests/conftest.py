"""Fixtures live in tests/fixtures/, one module per real server or emulator."""

import atexit
import os
import shutil
import tempfile

# Commands find a local stack's settings from any folder (certlc.stack_files.DEFAULT_DIR), and the demo keeps its
# state in one place whatever the folder: never the developer's own in the repository. Set before any test module
# imports certlc.
for _name, _prefix in (("CERTLC_STACK_DIR", "certlc-tests-stack-"), ("CERTLC_DEMO_DIR", "certlc-tests-demo-")):
    os.environ[_name] = tempfile.mkdtemp(prefix=_prefix)
    atexit.register(shutil.rmtree, os.environ[_name], True)

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.keyvault",
    "tests.fixtures.logs",
    "tests.fixtures.mail",
    "tests.fixtures.stack",
    "tests.fixtures.adcs",
    "tests.fixtures.ldap",
    "tests.fixtures.kdc",
    "tests.fixtures.nginx",
]

# A test that uses a real server's fixture carries that server's marker, so `pytest -m "not pebble"` leaves
# out exactly the tests that need pebble (the stack and the doctor's deployment run on Azurite).
SERVER_MARKERS = {
    "azurite": "azurite",
    "queue_client": "azurite",
    "stack": "azurite",
    "pebble": "pebble",
    "pebble_eab": "pebble",
    "cfssl_server": "cfssl",
    "cfssl_auth_server": "cfssl",
    "chromium_binary": "chromium",
    "slapd": "slapd",
    "slapd_kerberos": "slapd",
    "kdc": "kdc",
}


def pytest_collection_modifyitems(config, items) -> None:
    import pytest

    for item in items:
        for marker in {SERVER_MARKERS[name] for name in item.fixturenames if name in SERVER_MARKERS}:
            item.add_marker(getattr(pytest.mark, marker))
