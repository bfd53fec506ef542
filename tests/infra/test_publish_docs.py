"""infra/README.md's publish commands: the runtime is named, and a zip deploy asks for the remote build."""

import re

from tests.infra.template import README


def commands(text: str, start: str) -> list[str]:
    """Every command in the README's code blocks and inline code that begins with ``start``."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)  # shell line continuations
    found = re.findall(rf"(?m)^{re.escape(start)}[^\n`#]*", joined)
    found += re.findall(rf"`({re.escape(start)}[^`]*)`", joined)
    return [c.strip() for c in found]


def test_every_func_publish_names_the_python_runtime():
    """local.settings.json (where Core Tools otherwise reads the runtime) is git-ignored."""
    found = commands(README, "func azure functionapp publish")
    assert found, "the README no longer says how to publish the code"
    assert all(re.search(r"(^|\s)--python(\s|$)", c) for c in found), found


def test_every_zip_deploy_asks_for_the_remote_build():
    """The zip carries no dependencies: the remote build is what installs requirements.txt."""
    found = commands(README, "az functionapp deployment source config-zip")
    assert found, "the README no longer shows the zip deploy"
    assert all("--build-remote true" in c for c in found), found


def test_the_command_finder_sees_a_missing_flag():
    text = (
        "```sh\nfunc azure functionapp publish app\naz functionapp deployment source config-zip \\\n  --src x.zip\n```"
    )
    assert commands(text, "func azure functionapp publish") == ["func azure functionapp publish app"]
    assert commands(text, "az functionapp deployment source config-zip") == [
        "az functionapp deployment source config-zip --src x.zip"
    ]
