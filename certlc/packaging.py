"""Build ``dist/certlc-functionapp.zip``, the file a zip deploy uploads (``make package``).

The package holds the files ``.funcignore`` lets through, the same rules ``func azure functionapp publish``
applies, so there is one list of what ships. The zip is deterministic: entries sorted by path, every
timestamp 1980-01-01 00:00, every mode 0644. As a second line of defence the build fails, and leaves no
zip behind, when a file that would ship looks like a private key or a ``local.settings.json``, whatever
``.funcignore`` says.

``.funcignore`` uses .gitignore syntax, and this module reads the part of it whose meaning func's own
parser (a port of the ``gitignore-parser`` npm package: each pattern matches a prefix of the path from the
top) shares with git's: comments, blank lines, ``*``, whole-segment ``**``, a leading ``/`` and a trailing
``/``. Every pattern must be anchored (``/NAME`` or ``**/NAME``, or contain a ``/``), since func matches an
unanchored ``NAME`` only at the top and git at any depth. ``!``, ``?``, ``[`` and ``\\`` mean different
things to the two parsers and are refused.

Standard library only, so ``make package`` needs no virtualenv: ``python3 -m certlc.packaging``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from renewal.atomic import write_atomically

FUNCIGNORE = ".funcignore"
DEFAULT_OUT = Path("dist") / "certlc-functionapp.zip"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o100644  # a regular file, rw-r--r--

# A PEM private key block: the header, optional RFC 1421 headers (Proc-Type, DEK-Info), then base64.
# The base64 keeps a regular expression that merely names the header (renewal/audit.py) from counting.
PEM_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+:[^\r\n]*\r?\n)*\s*[A-Za-z0-9+/]{32}"
)
PUTTY_PRIVATE_KEY = re.compile(rb"^PuTTY-User-Key-File-\d+:", re.M)
KEY_SUFFIXES = frozenset({".key", ".pfx", ".p12", ".ppk", ".jks", ".keystore"})
KEY_NAMES = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
LOCAL_SETTINGS = re.compile(r"local\.settings.*\.json", re.I)


class PackageError(Exception):
    """The package cannot be built; the message says why."""


@dataclass(frozen=True)
class Rule:
    """One .funcignore pattern."""

    pattern: str
    line: int
    regex: re.Pattern[str]
    dir_only: bool

    def matches(self, path: str, *, is_dir: bool) -> bool:
        return (is_dir or not self.dir_only) and self.regex.fullmatch(path) is not None


def _segment(segment: str) -> str:
    return "[^/]*".join(re.escape(part) for part in segment.split("*"))


def parse_rule(pattern: str, line: int = 0) -> Rule:
    """Compile one anchored .gitignore pattern; PackageError for syntax outside the shared subset."""

    def refuse(why: str) -> PackageError:
        return PackageError(f"{FUNCIGNORE} line {line}: {pattern!r}: {why}")

    if pattern != pattern.strip():
        raise refuse("leading or trailing whitespace (func trims it, git keeps leading spaces)")
    if pattern.startswith("!"):
        raise refuse("negation is not supported (func applies it whatever the order, git only in order)")
    for char in "?[\\":
        if char in pattern:
            raise refuse(f"{char!r} is not supported (func's parser takes it literally, git as a wildcard or escape)")
    dir_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    if not body:
        raise refuse("empty pattern")
    if body.startswith("/"):
        body = body[1:]
    elif "/" not in body:
        raise refuse("unanchored: func matches it only at the top, git at any depth; write /NAME or **/NAME")
    segments = body.split("/")
    if not body or "" in segments:
        raise refuse("empty path segment")
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".+" if last else "(?:[^/]+/)*")
        elif "**" in segment:
            raise refuse("'**' must be a whole path segment")
        else:
            parts.append(_segment(segment) + ("" if last else "/"))
    return Rule(pattern, line, re.compile("".join(parts)), dir_only)


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            rules.append(parse_rule(line, number))
    return rules


def read_rules(root: Path) -> list[Rule]:
    path = root / FUNCIGNORE
    try:
        return parse_rules(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"no {FUNCIGNORE} in {root}: it decides what ships, so the build stops") from None


def ignored(rules: Iterable[Rule], path: str, *, is_dir: bool) -> bool:
    """Whether a path relative to the root (``/``-separated) is left out. The walk prunes ignored folders."""
    return any(rule.matches(path, is_dir=is_dir) for rule in rules)


def collect(root: Path, rules: list[Rule]) -> list[str]:
    """The relative paths of the files that ship, sorted. Symbolic links and special files are refused."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = prefix + entry.name
                if entry.is_symlink():
                    if not ignored(rules, rel, is_dir=False) and not ignored(rules, rel, is_dir=True):
                        raise PackageError(f"{rel} is a symbolic link; leave it out in {FUNCIGNORE} or copy the file")
                elif entry.is_dir():
                    if not ignored(rules, rel, is_dir=True):
                        walk(Path(entry.path), rel + "/")
                elif not ignored(rules, rel, is_dir=False):
                    if not entry.is_file():
                        raise PackageError(f"{rel} is not a regular file")
                    found.append(rel)

    walk(root, "")
    return sorted(found)


def secret_reason(rel: str, data: bytes) -> str | None:
    """Why a file must never ship, or None."""
    name = rel.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    if LOCAL_SETTINGS.fullmatch(name):
        return "a local.settings file (local app settings and secrets)"
    if suffix in KEY_SUFFIXES or name.lower() in KEY_NAMES:
        return f"a private key or key store by its name ({name})"
    if PEM_PRIVATE_KEY.search(data):
        return "it holds a PEM private key"
    if PUTTY_PRIVATE_KEY.search(data):
        return "it holds a PuTTY private key"
    return None


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """Deterministic zip of ``{relative path: content}``."""
    with tempfile.SpooledTemporaryFile() as buffer:
        with zipfile.ZipFile(buffer, "w") as archive:
            for rel in sorted(files):
                info = zipfile.ZipInfo(rel, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # unix, so external_attr carries the mode on every platform
                info.external_attr = FILE_MODE << 16
                archive.writestr(info, files[rel], compresslevel=9)
        buffer.seek(0)
        return buffer.read()


def ignored_path(rules: list[Rule], rel: str, *, is_dir: bool) -> bool:
    """Whether ``rel`` is left out, itself or through one of the folders above it."""
    parts = rel.split("/")
    folders = ("/".join(parts[:i]) for i in range(1, len(parts)))
    return any(ignored(rules, folder, is_dir=True) for folder in folders) or ignored(rules, rel, is_dir=is_dir)


def build(root: Path, out: Path) -> list[str]:
    """Write the package for ``root`` to ``out`` and return the paths in it; PackageError if it must not be built."""
    root, out = root.resolve(), out.resolve()
    rules = read_rules(root)
    if out.is_relative_to(root) and not ignored_path(rules, out.relative_to(root).as_posix(), is_dir=False):
        raise PackageError(f"{out} is not left out by {FUNCIGNORE}: the next package would contain this one")
    paths = collect(root, rules)
    files = {rel: (root / rel).read_bytes() for rel in paths}
    refused = [f"  {rel}: {why}" for rel, data in files.items() if (why := secret_reason(rel, data))]
    if refused:
        out.unlink(missing_ok=True)  # a stale package must not be deployed in place of this one
        raise PackageError(
            f"refusing to package {len(refused)} file(s) that must never be deployed; "
            f"add them to {FUNCIGNORE} or move them out of the tree:\n" + "\n".join(refused)
        )
    data = zip_bytes(files)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, data, mode=0o644)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m certlc.packaging",
        description=f"Build the zip-deploy package from the files {FUNCIGNORE} lets through.",
    )
    repository = Path(__file__).resolve().parents[1]
    parser.add_argument("--root", type=Path, default=repository, help="the function app folder")
    parser.add_argument("--out", type=Path, help=f"the zip to write (default: ROOT/{DEFAULT_OUT.as_posix()})")
    parser.add_argument("--list", action="store_true", help="print the files that would ship and write nothing")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = (args.out or root / DEFAULT_OUT).resolve()
    try:
        if args.list:
            print("\n".join(collect(root, read_rules(root))))
            return 0
        paths = build(root, out)
    except PackageError as exc:
        print(f"certlc package: {exc}", file=sys.stderr)
        return 2
    data = out.read_bytes()
    print(f"{out}: {len(paths)} files, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
