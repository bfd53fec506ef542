"""``make package``: what the zip-deploy package holds, that it indexes on its own, and the declared dependencies.

The slow test installs the package's requirements.txt into a fresh virtualenv (pip's cache keeps it short) and
indexes the unpacked package there with ``certlc/host/workerrules.py``, copied out of the repository so
that nothing but the package and its requirements can be imported.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from certlc import packaging as pkg

ROOT = Path(__file__).resolve().parents[2]
ZIP_NAME = "certlc-functionapp.zip"
REQUIRED = ("function_app.py", "host.json", "requirements.txt")
DEPLOYED_PACKAGES = ("renewal", "ingestion")
FUNCTIONS = {"event": "eventGridTrigger", "renew": "queueTrigger", "sweep": "timerTrigger", "ingest": "timerTrigger"}
PIP = ("--disable-pip-version-check", "-q")
FAKE_KEY = (
    "-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(bytes(range(256))).decode() + "-----END PRIVATE KEY-----\n"
)


def _run(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip, built by ``make package`` exactly as a user would (only the output path differs)."""
    make = shutil.which("make")
    assert make, "make is needed to build the package"
    out = tmp_path_factory.mktemp("dist") / ZIP_NAME
    result = _run([make, "-s", "package", f"PYTHON={sys.executable}", f"PACKAGE_ZIP={out}"], 120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert f"{out}: " in result.stdout and " files, " in result.stdout
    return out


@pytest.fixture(scope="module")
def names(package: Path) -> list[str]:
    with zipfile.ZipFile(package) as archive:
        return archive.namelist()


# --- what ships ---------------------------------------------------------------------------------------------------


def test_the_package_holds_the_app(names: list[str]) -> None:
    for required in REQUIRED:
        assert required in names
    for folder in DEPLOYED_PACKAGES:
        on_disk = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / folder).rglob("*.py")
            if "__pycache__" not in path.relative_to(ROOT).parts
        }
        assert f"{folder}/__init__.py" in on_disk
        assert on_disk <= set(names), f"missing from the package: {sorted(on_disk - set(names))}"


def test_the_package_holds_nothing_local(names: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {*REQUIRED, *DEPLOYED_PACKAGES}
    for name in names:
        parts = name.split("/")
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name
        assert not re.fullmatch(r"local\.settings.*\.json", parts[-1]), name
        assert not parts[-1].endswith((".pem", ".key", ".pfx", ".p12")), name


def test_no_file_in_the_package_holds_a_private_key(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            assert b"PRIVATE KEY-----\n" not in data and b"PRIVATE KEY-----\r\n" not in data, info.filename


def test_the_package_is_deterministic(package: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    again = tmp_path / ZIP_NAME
    assert pkg.main(["--out", str(again)]) == 0
    assert again.read_bytes() == package.read_bytes()


def test_the_deployed_code_imports_nothing_from_certlc_or_localazure() -> None:
    # .funcignore leaves all of certlc/ and localazure/ out; that is right only while the functions import none of it.
    for module, _ in _imports():
        assert module.split(".")[0] not in {"certlc", "localazure"}, module


# --- .funcignore: one list, read the same way by func and by make package ------------------------------------------


def _func_parser(text: str):
    """``func``'s .funcignore parser (Azure Functions Core Tools' GitIgnoreParser, itself a port of the
    gitignore-parser npm package): every pattern, a leading ``/`` dropped, matches a prefix of the path;
    ``**`` is ``.+`` and ``*`` is ``[^/]+``; a negated pattern wins over any other."""
    positive: list[str] = []
    negative: list[str] = []
    for line in (line.strip() for line in text.split("\n")):
        if not line or line.startswith("#"):
            continue
        target = negative if line.startswith("!") else positive
        line = line.removeprefix("!").removeprefix("/")
        escaped = re.sub(r"[\-\[\]/{}()+?.\\^$|]", lambda m: "\\" + m.group(0), line)
        target.append(escaped.replace("**", "(.+)").replace("*", "([^\\/]+)"))

    def compiled(patterns: list[str]) -> re.Pattern[str]:
        return re.compile("^((" + ")|(".join(sorted(patterns)) + "))") if patterns else re.compile("$^")

    positive_re, negative_re = compiled(positive), compiled(negative)
    return lambda path: bool(positive_re.match(path)) and not negative_re.match(path)


def test_func_and_make_package_ship_the_same_files() -> None:
    # One listing of the tree, judged by both parsers. Core Tools always skips .git and .vscode folders and
    # files with these names, whatever .funcignore says.
    text = (ROOT / pkg.FUNCIGNORE).read_text(encoding="utf-8")
    func_denies = _func_parser(text)
    rules = pkg.parse_rules(text)
    always = {".funcignore", ".gitignore", "local.settings.json", "project.lock.json", "appsettings.json"}
    by_func, by_us = set(), set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in {".git", ".vscode"}]
        for file in files:
            rel = Path(folder, file).relative_to(ROOT).as_posix()
            if file not in always and not func_denies(rel):
                by_func.add(rel)
            if not pkg.ignored_path(rules, rel, is_dir=False):
                by_us.add(rel)
    assert by_func == by_us
    assert "function_app.py" in by_us and not any(p.startswith(("certlc/", ".venv/", "tests/")) for p in by_us)


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("/tests/", "tests", True, True),
        ("/tests/", "tests", False, False),  # a trailing / matches folders only
        ("/tests/", "renewal/tests", True, False),  # a leading / anchors at the top
        ("/tests/", "tests_helpers", True, False),
        ("/local.settings*.json", "local.settings.json", False, True),
        ("/local.settings*.json", "local.settings.sample.json", False, True),
        ("/local.settings*.json", "renewal/local.settings.json", False, False),
        ("/*.egg-info/", "certlc.egg-info", True, True),
        ("/*.pyc", "renewal/x.pyc", False, False),  # * stops at /
        ("**/*.pyc", "renewal/ca/x.pyc", False, True),
        ("**/*.pyc", "x.pyc", False, True),  # **/ also matches at the top
        ("**/__pycache__/", "renewal/eventgrid/__pycache__", True, True),
        ("renewal/**/secret.txt", "renewal/secret.txt", False, True),
        ("renewal/**/secret.txt", "renewal/a/b/secret.txt", False, True),
        ("renewal/**/secret.txt", "ingestion/secret.txt", False, False),
        ("/bench/**", "bench/results/x.json", False, True),
        ("/bench/**", "bench", True, False),
    ],
)
def test_funcignore_patterns(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert pkg.parse_rule(pattern).matches(path, is_dir=is_dir) is expected


def test_a_folder_left_out_takes_its_contents() -> None:
    rules = pkg.parse_rules("/.local/\n")
    assert pkg.ignored_path(rules, ".local/stack/ca/ca.key", is_dir=False)
    assert not pkg.ignored_path(rules, "renewal/.local", is_dir=False)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("tests", "unanchored"),
        ("*.pyc", "unanchored"),
        ("!/renewal/", "negation"),
        ("/file?.py", "'?'"),
        ("/[abc].py", "'['"),
        ("/a\\ b", "'\\\\'"),
        (" /tests/", "whitespace"),
        ("/a**b/", "whole path segment"),
        ("/", "empty"),
    ],
)
def test_patterns_func_reads_differently_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(pkg.PackageError, match=re.escape(why)):
        pkg.parse_rules(f"# comment\n\n{pattern}\n")


# --- defence in depth -------------------------------------------------------------------------------------------


def _app(root: Path, funcignore: str = "/.local/\n/dist/\n") -> Path:
    (root / "renewal").mkdir(parents=True)
    (root / "function_app.py").write_text("import azure.functions as func\napp = func.FunctionApp()\n")
    (root / "host.json").write_text('{"version": "2.0"}\n')
    (root / "requirements.txt").write_text("azure-functions\n")
    (root / "renewal" / "__init__.py").write_text("")
    (root / ".local").mkdir()
    (root / ".local" / "ca.key").write_text(FAKE_KEY)
    (root / ".funcignore").write_text(funcignore)
    return root


def _build(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    out = root / "dist" / ZIP_NAME
    code = pkg.main(["--root", str(root), "--out", str(out)])
    return code, capsys.readouterr().err, out


def test_a_minimal_app_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = _build(_app(tmp_path), capsys)
    assert (code, err) == (0, "")
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [
            ".funcignore",
            "function_app.py",
            "host.json",
            "renewal/__init__.py",
            "requirements.txt",
        ]


@pytest.mark.parametrize(
    ("rel", "content", "reason"),
    [
        ("renewal/tls/server.pem", FAKE_KEY, "PEM private key"),
        ("renewal/notes.txt", "see below\r\n" + FAKE_KEY.replace("\n", "\r\n"), "PEM private key"),
        ("renewal/legacy.pem", FAKE_KEY.replace("PRIVATE", "RSA PRIVATE", 1), "PEM private key"),
        ("renewal/deploy.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\n", "private key"),
        ("renewal/client.pfx", "binary", "key store"),
        ("id_ed25519", "key", "key store"),
        ("local.settings.json", '{"Values": {}}', "local.settings"),
        ("renewal/local.settings.prod.json", '{"Values": {}}', "local.settings"),
    ],
)
def test_secrets_fail_the_build_whatever_funcignore_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rel: str, content: str, reason: str
) -> None:
    root = _app(tmp_path)
    stale = root / "dist" / ZIP_NAME
    stale.parent.mkdir()
    stale.write_bytes(b"an earlier package")
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(content.encode())
    code, err, out = _build(root, capsys)
    assert code == 2
    assert f"{rel}: " in err and reason in err and "refusing to package" in err
    assert not out.exists(), "a failed build must not leave an earlier package to deploy"


def test_code_that_only_names_the_pem_header_ships(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _app(tmp_path)
    (root / "renewal" / "audit.py").write_text('KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?")\n')
    code, err, _ = _build(root, capsys)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("funcignore", "out", "message"),
    [
        (None, "dist/x.zip", "no .funcignore"),
        ("tests\n", "dist/x.zip", "unanchored"),
        ("/.local/\n", "dist/x.zip", "would contain this one"),
        ("/.local/\n/dist/\n", "renewal/x.zip", "would contain this one"),
    ],
)
def test_the_build_stops_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], funcignore: str | None, out: str, message: str
) -> None:
    root = _app(tmp_path, funcignore or "")
    if funcignore is None:
        (root / ".funcignore").unlink()
    assert pkg.main(["--root", str(root), "--out", str(root / out)]) == 2
    assert message in capsys.readouterr().err
    assert not (root / out).exists()


def test_symbolic_links_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _app(tmp_path)
    (root / "renewal" / "ca.key").symlink_to(root / ".local" / "ca.key")
    code, err, _ = _build(root, capsys)
    assert code == 2 and "renewal/ca.key is a symbolic link" in err


# --- the package on its own: a fresh virtualenv with its requirements.txt only ---------------------------------------


def _imports() -> list[tuple[str, Path]]:
    """Every absolute import in the deployed code, lazy ones included: (dotted module, file)."""
    files = [ROOT / "function_app.py"] + [p for d in DEPLOYED_PACKAGES for p in sorted((ROOT / d).rglob("*.py"))]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(alias.name, path) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.module, path))
    return found


# The on-premises worker's optional Kerberos extra (requirements-kerberos.txt), imported only with
# CERTLC_ADCS_AUTH=kerberos (renewal/ca/adcs_kerberos.py) or a Kerberos directory bind (renewal/ca/adcs_templates.py);
# never deployed to Azure, where those settings answer with what to install.
OPTIONAL_EXTRA_MODULES = {"requests_kerberos", "gssapi"}


def _third_party_imports() -> list[str]:
    local = {*DEPLOYED_PACKAGES, "function_app"}
    skip = sys.stdlib_module_names | local | OPTIONAL_EXTRA_MODULES
    top = {m for m, _ in _imports() if m.split(".")[0] not in skip}
    return sorted(top)


@pytest.mark.timeout(1200)  # a cold pip install of the requirements (its own step has a 900 s limit)
def test_fresh_virtualenv_indexes_the_package(package: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    app = tmp_path / "app"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(app)
    venv = tmp_path / "venv"
    result = _run([sys.executable, "-m", "venv", str(venv)], 180)
    assert result.returncode == 0, result.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = str(venv / "bin" / "python")
    # pip keeps its usual cache and configuration (inherited environment); nothing else is installed.
    result = _run([python, "-m", "pip", "install", *PIP, "-r", str(app / "requirements.txt")], 900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    installed = time.monotonic()

    checker = tmp_path / "checker"
    checker.mkdir()
    shutil.copy2(ROOT / "certlc" / "host" / "workerrules.py", checker / "workerrules.py")
    # No CERTLC_* setting at all: indexing needs none. CERTLC_VAULTS and the settings behind the binding
    # expressions (%CERTLC_QUEUE_NAME%, the schedules) are read when a function runs, not when the app loads.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    isolated = _run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('certlc'))"], 60, cwd=checker, env=env
    )
    assert isolated.stdout.strip() == "None", "the repository must not be importable in the fresh virtualenv"

    result = _run([python, str(checker / "workerrules.py"), str(app)], 120, cwd=checker, env=env)
    assert result.returncode == 0, f"the worker would load no function:\n{result.stderr}"
    functions = {f["name"]: f for f in json.loads(result.stdout)["functions"]}
    assert {name: f["trigger"] for name, f in functions.items()} == FUNCTIONS
    settings = {b.get("queueName") or b.get("schedule") for f in functions.values() for b in f["bindings"]} - {None}
    assert settings == {"%CERTLC_QUEUE_NAME%", "%CERTLC_SWEEP_SCHEDULE%", "%CERTLC_INGEST_SCHEDULE%"}

    # The Azure SDKs are imported lazily, so indexing does not prove they are installed: look each one up.
    modules = _third_party_imports()
    assert "azure.functions" in modules and "azure.keyvault.certificates" in modules
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m) is None])"
    missing = _run([python, "-c", probe, *modules], 120, cwd=checker, env=env)
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.strip() == "[]", (
        f"imported by the package but not installed by its requirements.txt: {missing.stdout}"
    )
    print(f"fresh virtualenv: install {installed - started:.1f}s, index {time.monotonic() - installed:.1f}s")


# --- pip install . --------------------------------------------------------------------------------------------------


def test_the_wheel_requires_what_requirements_txt_lists(tmp_path: Path) -> None:
    # Built from a copy, so that the build's own folders never appear in the working tree.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("certlc", *DEPLOYED_PACKAGES):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    wheels = tmp_path / "wheels"
    result = _run([sys.executable, "-m", "pip", "wheel", *PIP, "--no-deps", str(source), "-w", str(wheels)], 300)
    assert result.returncode == 0, result.stderr
    (wheel,) = wheels.glob("certlc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
        entry_points = archive.read(metadata.replace("METADATA", "entry_points.txt")).decode()
    required = [Requirement(r) for r in message.get_all("Requires-Dist") or []]
    declared = {str(r) for r in required if r.marker is None}
    extras = {str(r).split(";")[0] for r in required if r.marker is not None}
    listed = {
        str(Requirement(line.split(" #")[0]))
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert declared == listed
    assert extras == {"azure-keyvault-secrets<4.13,>=4.9"}, "certlc sync's extra, and nothing else optional"
    assert message.get_all("Provides-Extra") == ["sync"]
    assert "azure-functions==1.26.0" in declared
    assert "certlc = certlc.cli:main" in entry_points
