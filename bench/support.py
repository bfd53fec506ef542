"""What the stack benchmarks share: a local stack in a scratch folder, seeding, Key Vault request shapes, output.

Seeded certificates are due for certlc (less than a third of their lifetime left) but more than 30 days
from expiry, so Key Vault raises no NearExpiry event for them: the benchmark alone decides what is queued.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LIFETIME_DAYS = 365
DUE_DAYS_LEFT = 60  # inside certlc's window (< 1/3 of 365 days), outside Key Vault's 30-day NearExpiry
HEALTHY_DAYS_LEFT = 300
_CERT_SUFFIXES = frozenset({"create", "import", "pending", "policy", "versions"})
_VERSION = re.compile(r"^[0-9a-f]{32}$")


@contextmanager
def local_stack(
    vaults: Sequence[str], settings: Mapping[str, str], ca_profiles: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """A started ``LocalStack`` (Azurite, emulators, Functions host) in a scratch folder removed afterwards.

    ``ca_profiles`` become the local CA's profiles.json, written before the CA is first used.
    """
    from certlc.localstack.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="certlc-bench-") as scratch:
        directory = Path(scratch)
        if ca_profiles is not None:
            (directory / "ca").mkdir(mode=0o700)
            (directory / "ca" / "profiles.json").write_text(json.dumps(ca_profiles), encoding="utf-8")
        with LocalStack(directory, vaults=vaults, extra_settings=settings, max_polling_interval=0.2) as stack:
            yield stack


def certificate_client(stack: Any, vault: str) -> Any:
    from renewal.clients import certificate_client as build

    return build(stack.keyvault.vault_urls[vault], stack.settings)


def emulated_now(stack: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(stack.control.now().replace("Z", "+00:00"))


def seed(
    stack: Any,
    names: Iterable[tuple[str, str]],
    *,
    days_left: int = DUE_DAYS_LEFT,
    tags: Mapping[str, str] | None = None,
    workers: int = 8,
) -> dict[tuple[str, str], str]:
    """Create (vault, name) certificates issued by a previous CA; returns each one's current version."""
    from certlc.localstack.seeding import PreviousCA, seed_certificate

    ca = PreviousCA()
    now = emulated_now(stack)
    clients = {vault: certificate_client(stack, vault) for vault in stack.vault_names}

    def one(key: tuple[str, str]) -> tuple[tuple[str, str], str]:
        vault, name = key
        cert = seed_certificate(
            clients[vault],
            ca,
            name,
            now=now,
            sans=(f"{name}.bench.example",),
            days_left=days_left,
            lifetime_days=LIFETIME_DAYS,
            tags=dict(tags or {}),
        )
        return key, cert.properties.version

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(one, list(names)))


def enqueue(stack: Any, bodies: Iterable[str]) -> int:
    """Send message texts to the renewal queue as Event Grid or the sweep would (base64)."""
    from renewal.clients import queue_client

    queue = queue_client(stack.settings, stack.settings["CERTLC_QUEUE_NAME"])
    sent = 0
    for body in bodies:
        queue.send_message(body)
        sent += 1
    return sent


def shape(method: str, path: str) -> str:
    """``GET /certificates/{name}/{version}`` for a logged request: names and versions folded away."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] in ("certificates", "secrets", "deletedcertificates"):
        parts[1] = "{name}"
        if len(parts) >= 3 and parts[2] not in _CERT_SUFFIXES and (_VERSION.match(parts[2]) or parts[2] == ""):
            parts[2] = "{version}"
    return f"{method} /{'/'.join(p for p in parts if p)}"


def vault_calls(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Requests that cost a Key Vault transaction: the 401 bearer challenge is the SDK's handshake, not a call."""
    return [e for e in entries if e["status"] != 401]


def call_shapes(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{shape(e['method'], e['path'])} -> {e['status']}" for e in vault_calls(entries)]


def count_shapes(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return dict(Counter(shape(e["method"], e["path"]) for e in vault_calls(entries)).most_common())


def write_result(name: str, result: Mapping[str, Any]) -> None:
    """Print the JSON and keep it in bench/results/<name>.json."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n", encoding="utf-8")
