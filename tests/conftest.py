"""Fixtures live in tests/fixtures/, one module per real server or emulator."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.keyvault",
    "tests.fixtures.logs",
    "tests.fixtures.mail",
    "tests.fixtures.stack",
    "tests.fixtures.adcs",
]
