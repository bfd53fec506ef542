"""Makes the real test servers and checkers available: Azurite and Microsoft's Kusto language service from npm,
pebble/cfssl/chromium/slapd/nginx (and certbot/lego for the benchmarks) from Debian, checkov from PyPI.

One place used by the Makefile, the test fixtures and the local stack, so a fresh CI machine and a
developer's laptop install the same pinned tools the same way, and a warm machine does nothing.

    python -m localazure.tools install azurite pebble cfssl chromium checkov kql slapd
    python -m localazure.tools which azurite
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_VERSION = "3.35.0"  # 3.36+ needs Node >= 21
CHECKOV_VERSION = "3.3.30"
KUSTO_LANGUAGE_VERSION = "12.4.1"  # @kusto/language-service-next: parses and binds KQL offline (infra/kql_check.js)
APT_LOCK_WAIT_SECONDS = 300


class ToolMissing(RuntimeError):
    """A tool is not installed and cannot be installed here; the message says how to install it."""


def tools_dir() -> Path:
    """Where npm and pip tools go: ``CERTLC_TOOLS_DIR`` or ``<repo>/.tools`` (git-ignored)."""
    return Path(os.environ.get("CERTLC_TOOLS_DIR") or REPO_ROOT / ".tools")


def _run(command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(
        list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ToolMissing(f"`{' '.join(command)}` failed (exit {result.returncode}): {' | '.join(tail)}")


_apt_updated = False


def _apt(args: Sequence[str]) -> None:
    """Runs apt-get, waiting (by polling) while another apt/dpkg holds the lock."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_SECONDS}", *args]
    deadline = time.monotonic() + APT_LOCK_WAIT_SECONDS
    while True:
        try:
            _run(command, env=env)
            return
        except ToolMissing as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        time.sleep(2)  # another apt run holds the lists lock; nothing to poll but the lock itself


def apt_install(package: str) -> None:
    """Installs one Debian package (``apt-get update`` once per process first)."""
    global _apt_updated
    hint = f"install it with: apt-get install -y {package}"
    if shutil.which("apt-get") is None:
        raise ToolMissing(f"Debian package {package!r} is needed but apt-get is not available; {hint}")
    if os.geteuid() != 0:
        raise ToolMissing(f"Debian package {package!r} is needed and installing it needs root; sudo {hint}")
    if not _apt_updated:
        _apt(["update"])
        _apt_updated = True
    _apt(["install", "-y", "--no-install-recommends", package])


@dataclass(frozen=True)
class AptTool:
    """A tool shipped as a Debian package: ``binaries`` on the PATH, or for a library the ``files`` (glob patterns)
    it installs; the first one found is the path handed back."""

    name: str
    package: str
    binaries: tuple[str, ...]
    files: tuple[str, ...] = ()

    def locate(self) -> Path | None:
        found = [shutil.which(binary) for binary in self.binaries]
        found += [min(glob.glob(pattern), default=None) for pattern in self.files]
        return Path(found[0]) if all(found) else None  # type: ignore[arg-type]

    def ensure(self) -> Path:
        path = self.locate()
        if path is None:
            apt_install(self.package)
            path = self.locate()
        if path is None:
            raise ToolMissing(
                f"{self.name}: package {self.package!r} installed but {', '.join(self.binaries + self.files)} "
                "not all found; check the PATH or reinstall the package"
            )
        return path


@dataclass(frozen=True)
class NpmTool:
    """A tool installed with npm into the tools folder, pinned to one version; a library without a ``binary``
    is located by its package folder (``NODE_PATH`` is then the ``node_modules`` above it)."""

    name: str
    package: str
    version: str
    binary: str = ""

    def installed_version(self) -> str | None:
        manifest = tools_dir() / "node_modules" / self.package / "package.json"
        try:
            return json.loads(manifest.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    def locate(self) -> Path | None:
        modules = tools_dir() / "node_modules"
        path = modules / ".bin" / self.binary if self.binary else modules / self.package
        return path if path.exists() and self.installed_version() == self.version else None

    def ensure(self) -> Path:
        path = self.locate()
        if path is not None:
            return path
        if shutil.which("npm") is None:
            raise ToolMissing(
                f"{self.name} is installed with npm, which is not on PATH; install Node.js 20 and npm "
                "(apt-get install -y nodejs npm)"
            )
        folder = tools_dir()
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "package.json"
        if not manifest.exists():  # npm refuses --prefix on a folder without one
            manifest.write_text(json.dumps({"name": "certlc-tools", "private": True}, indent=2) + "\n")
        _run(
            ["npm", "install", f"{self.package}@{self.version}", "--save-exact", "--no-audit", "--no-fund", "--silent"],
            cwd=folder,
        )
        path = self.locate()
        if path is None:
            raise ToolMissing(
                f"npm installed {self.package}@{self.version} but {self.binary or self.package} is not in {folder}"
            )
        return path


@dataclass(frozen=True)
class PipTool:
    """A Python tool pinned to one version in its own virtualenv under the tools folder.

    Its own virtualenv, because a tool such as checkov pins many dependencies that must not
    change the versions the project's own virtualenv resolves.
    """

    name: str
    package: str
    version: str
    binary: str

    def venv(self) -> Path:
        return tools_dir() / "venvs" / self.name

    def installed_version(self) -> str | None:
        prefix = f"{self.package.replace('-', '_')}-"
        for info in self.venv().glob("lib/python*/site-packages/*.dist-info"):
            if info.name.lower().startswith(prefix.lower()):
                return info.name[len(prefix) : -len(".dist-info")]
        return None

    def locate(self) -> Path | None:
        path = self.venv() / "bin" / self.binary
        return path if path.exists() and self.installed_version() == self.version else None

    def ensure(self) -> Path:
        path = self.locate()
        if path is not None:
            return path
        venv = self.venv()
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", "--clear", str(venv)])
        _run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"{self.package}=={self.version}"]
        )  # fmt: skip
        path = self.locate()
        if path is None:
            raise ToolMissing(f"pip installed {self.package}=={self.version} but {self.binary} is not in {venv}/bin")
        return path


AZURITE = NpmTool("azurite", "azurite", AZURITE_VERSION, "azurite-queue")
PEBBLE = AptTool("pebble", "pebble", ("pebble",))
CFSSL = AptTool("cfssl", "golang-cfssl", ("cfssl", "cfssljson"))
CHROMIUM = AptTool("chromium", "chromium", ("chromium",))
SLAPD = AptTool("slapd", "slapd", ("slapd", "slapadd"))  # OpenLDAP: the directory the AD CS template lookup reads
# Cyrus SASL's GSSAPI mechanism: slapd takes Kerberos binds with it (the template lookup's Kerberos bind)
SASL_GSSAPI = AptTool("sasl-gssapi", "libsasl2-modules-gssapi-mit", (), ("/usr/lib/*/sasl2/libgssapiv2.so*",))
SYSTEMD = AptTool("systemd-analyze", "systemd", ("systemd-analyze",))  # verifies the worker's unit file
# Kerberos for AD CS web enrollment: an MIT KDC and its admin tools stand in for a domain controller in the tests,
# kinit fills a worker's credential cache, and gssapi (no Linux wheels) builds against libkrb5-dev with gcc.
KRB5_KDC = AptTool("krb5-kdc", "krb5-kdc", ("krb5kdc", "kdb5_util"))
KRB5_ADMIN = AptTool("krb5-admin-server", "krb5-admin-server", ("kadmin.local",))
KRB5_USER = AptTool("krb5-user", "krb5-user", ("kinit", "klist"))
LIBKRB5_DEV = AptTool("libkrb5-dev", "libkrb5-dev", ("krb5-config",))
GCC = AptTool("gcc", "gcc", ("gcc",))
CERTBOT = AptTool("certbot", "certbot", ("certbot",))  # ACME peers the issuance benchmark compares certlc with
LEGO = AptTool("lego", "lego", ("lego",))
NGINX = AptTool("nginx", "nginx", ("nginx",))  # a real TLS endpoint: what a probe and certlc sync see
CHECKOV = PipTool("checkov", "checkov", CHECKOV_VERSION, "checkov")
KQL = NpmTool("kql", "@kusto/language-service-next", KUSTO_LANGUAGE_VERSION)
TOOLS: dict[str, AptTool | NpmTool | PipTool] = {
    tool.name: tool for tool in (AZURITE, PEBBLE, CFSSL, CHROMIUM, CHECKOV, KQL, SLAPD, SYSTEMD, CERTBOT, LEGO)
}
TOOLS.update({tool.name: tool for tool in (KRB5_KDC, KRB5_ADMIN, KRB5_USER, LIBKRB5_DEV, GCC, SASL_GSSAPI, NGINX)})


def ensure_azurite() -> Path:
    """Path to ``azurite-queue``, installing the pinned Azurite when missing."""
    return AZURITE.ensure()


def ensure_pebble() -> Path:
    return PEBBLE.ensure()


def ensure_cfssl() -> Path:
    """Path to ``cfssl`` (``cfssljson`` is installed next to it)."""
    return CFSSL.ensure()


def ensure_chromium() -> Path:
    return CHROMIUM.ensure()


def ensure_slapd() -> Path:
    """Path to ``slapd`` (``slapadd`` is installed next to it)."""
    return SLAPD.ensure()


def ensure_slapd_gssapi() -> Path:
    """Path to ``slapd``, with Cyrus SASL's GSSAPI mechanism installed for its Kerberos binds."""
    SASL_GSSAPI.ensure()
    return SLAPD.ensure()


def ensure_kdc() -> Path:
    """Path to ``krb5kdc``, with ``kadmin.local`` (another package) and ``kinit`` installed too."""
    KRB5_ADMIN.ensure()
    KRB5_USER.ensure()
    return KRB5_KDC.ensure()


def ensure_nginx() -> Path:
    return NGINX.ensure()


def ensure_checkov() -> Path:
    """Path to ``checkov``, installing the pinned version into its own virtualenv when missing."""
    return CHECKOV.ensure()


def ensure_kql() -> Path:
    """The folder of Microsoft's Kusto language service (npm), installing the pinned version when missing."""
    return KQL.ensure()


def _command(action: Callable[[AptTool | NpmTool | PipTool], Path | None], names: Sequence[str]) -> int:
    for name in names:
        tool = TOOLS.get(name)
        if tool is None:
            print(f"error: unknown tool {name!r}; known: {', '.join(TOOLS)}", file=sys.stderr)
            return 2
        try:
            path = action(tool)
        except ToolMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if path is None:
            print(
                f"error: {name} is not installed; run: python -m localazure.tools install {name}",
                file=sys.stderr,
            )
            return 1
        print(f"{name}: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    actions = {"install": lambda tool: tool.ensure(), "which": lambda tool: tool.locate()}
    if len(args) < 2 or args[0] not in actions:
        print(f"usage: python -m localazure.tools install|which {'|'.join(TOOLS)}...", file=sys.stderr)
        return 2
    return _command(actions[args[0]], args[1:])


if __name__ == "__main__":
    sys.exit(main())
