"""`certlc sync` on a server installed without its extra says what to install, in one line, and exits 2."""

from __future__ import annotations

import subprocess
import sys

from tests.cli import REPO, without_certlc_settings

# The certlc command as a process, with the secrets SDK made unimportable, as on a server where `pip install .`
# ran without `[sync]`.
WITHOUT_SECRETS_SDK = (
    "import sys; sys.modules['azure.keyvault.secrets'] = None; from certlc.cli import main; sys.exit(main())"
)


def test_sync_without_its_extra_names_the_install_command(tmp_path) -> None:
    env = without_certlc_settings() | {"CERTLC_VAULTS": "kv1=https://127.0.0.1:9"}
    args = ["sync", "--vault", "kv1", "--name", "www", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k")]
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_SECRETS_SDK, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        "certlc: certlc sync needs the Key Vault secrets SDK: pip install 'certlc[sync]' (in a checkout: "
        "pip install '.[sync]')"
    ], run.stderr
    assert not list(tmp_path.iterdir())
