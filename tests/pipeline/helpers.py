"""Small helpers for driving the local stack in pipeline tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localazure.ports import poll_until
from localazure.seeding import PreviousCA, seed_certificate

from tests.environment import without_certlc_settings

PREVIOUS_CA = PreviousCA()


@dataclass
class HandClock:
    """A clock the test moves by hand, for the functions to read in place of Key Vault's emulated one."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@contextlib.contextmanager
def functions_clock(clock: HandClock, **settings: str) -> Iterator[HandClock]:
    """The functions (sweep, renew, event) read ``clock`` until the block ends: a runtime built from the stack's
    settings (already in the environment) with only the clock replaced, and any ``settings`` given."""
    from renewal import handlers
    from renewal.runtime import build_runtime

    handlers.reset_runtime(build_runtime({**os.environ, **settings}, clock=clock))
    try:
        yield clock
    finally:
        handlers.reset_runtime()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client(stack: Any, vault: str = "kv1") -> Any:
    return stack.certificate_client(vault)


def secret_client(stack: Any, vault: str = "kv1") -> Any:
    from azure.keyvault.secrets import SecretClient

    from renewal.clients import StaticTokenCredential

    return SecretClient(
        stack.keyvault.vault_urls[vault],
        StaticTokenCredential(stack.keyvault.token),
        connection_verify=stack.keyvault.ca_bundle,
        verify_challenge_resource=False,
    )


def seed(
    stack: Any,
    name: str,
    *,
    vault: str = "kv1",
    days_left: int = 20,
    lifetime_days: int = 90,
    sans: tuple[str, ...] | None = None,
    **kwargs: Any,
) -> Any:
    return seed_certificate(
        client(stack, vault),
        PREVIOUS_CA,
        name,
        now=stack.now(),
        sans=sans or (f"{name}.example.com",),
        days_left=days_left,
        lifetime_days=lifetime_days,
        **kwargs,
    )


def settle(stack: Any, timeout: float = 60.0) -> int:
    return stack.settle(timeout)


def versions(stack: Any, name: str, vault: str = "kv1") -> list[Any]:
    """The versions that hold a certificate: a pending create's placeholder (disabled, no x5t) is not one."""
    return [v for v in client(stack, vault).list_properties_of_certificate_versions(name) if v.x509_thumbprint]


def no_pending(stack: Any, name: str) -> bool:
    """No operation left in progress (Key Vault keeps a completed one readable after the merge)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return (client(stack).get_certificate_operation(name).status or "").lower() != "inprogress"
    except ResourceNotFoundError:
        return True


def drain_until(stack: Any, done: Callable[[], object], *, timeout: float = 90.0, names: tuple[str, ...] = ()) -> None:
    """Drain the stack until ``done()``: retries come back after their visibility delay. Then once more, so an
    invocation that made ``done()`` true has finished what it does after (the alert follows the audit record).
    On time-out the message shows each of ``names``' versions and audit events."""

    def drained() -> bool:
        if done():
            return True
        settle(stack)
        return False

    def state() -> str:
        described = (
            f"{n}: {len(versions(stack, n))} versions, {[(r['event'], r.get('reason')) for r in audit(stack, n)]}"
            for n in names
        )
        return "; ".join(["the pipeline's expected state", *described])

    poll_until(drained, timeout=timeout, interval=0.2, what=state)
    settle(stack)


def deliver(stack: Any, body: str, dequeue_count: int = 1) -> None:
    """One delivery of a renewal queue message to function_app's ``renew`` function, in this thread, as the
    worker gets it: the body and the host's trigger metadata, turned into ``func.QueueMessage`` by the converter."""
    from azure.functions.meta import Datum

    metadata = {
        "Id": Datum(type="string", value=str(uuid.uuid4())),
        "DequeueCount": Datum(type="json", value=json.dumps(dequeue_count)),
        "PopReceipt": Datum(type="string", value="test"),
    }
    stack.host.functions["renew"].call(Datum(type="string", value=body), metadata)


def merged(stack: Any, name: str) -> int:
    return sum(record["event"] == "merged" for record in audit(stack, name))


def audit(stack: Any, name: str) -> list[dict[str, Any]]:
    path = Path(stack.settings["CERTLC_AUDIT_FILE"])
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("name") == name]


def alerts_for(receiver: Any, name: str) -> list[dict[str, Any]]:
    return [r.body for r in receiver.received() if isinstance(r.body, dict) and r.body.get("name") == name]


def near_expiry_event(stack: Any, name: str, version: str) -> dict[str, Any]:
    """A NearExpiry event for ``kv1`` as Event Grid delivers it (EventGridSchema)."""
    vault_url = stack.keyvault.vault_urls["kv1"]
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/certlc-local/providers"
        "/Microsoft.KeyVault/vaults/kv1",
        "subject": name,
        "eventType": "Microsoft.KeyVault.CertificateNearExpiry",
        "eventTime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "Id": f"{vault_url}/certificates/{name}/{version}",
            "VaultName": "kv1",
            "ObjectType": "Certificate",
            "ObjectName": name,
            "Version": version,
            "NBF": str(now - 86400),
            "EXP": str(now + 86400),
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


@contextlib.contextmanager
def certlc_worker(settings: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``certlc worker`` process (verbose: it logs each invocation) on the queue ``settings`` name, its output
    in ``log`` (a file, not a pipe: a full pipe would block its logging); stopped with SIGTERM at the end, resumed
    first should a test have paused it."""
    command = [sys.executable, "-m", "certlc", "-v", "--settings", str(settings), "worker", "--max-polling-interval"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "0.2"],
            cwd=Path(__file__).resolve().parents[2],
            env=without_certlc_settings(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        poll_until(
            lambda: "certlc worker: polling" in log.read_text(errors="replace") or process.poll() is not None,
            timeout=60,
            what="the worker's first poll",
        )
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
