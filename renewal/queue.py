"""The renewal queue and the failed store, both Azure storage queues.

Retries are new messages sent with a visibility delay, so one certificate waiting
for its back-off never holds up the others. Permanent failures go to
``<queue>-failed`` (kept until an operator acts); messages the Functions host gave up
on land in ``<queue>-poison``. ``certlc failed list|retry`` reads and re-drives both.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from renewal.messages import RenewalRequest

LIST_VISIBILITY_SECONDS = 30
UNREADABLE = "unreadable"


def lenient_decode_policy() -> Any:
    """Reads the failed and poison queues whatever lands there: base64 text as the Functions host writes it,
    anything else (plain JSON from an Event Grid subscription, garbage) as it is. The SDK's own base64 policy
    fails on such a message, and so would every operator command that reads the queue."""
    from azure.storage.queue import TextBase64DecodePolicy

    class LenientBase64DecodePolicy(TextBase64DecodePolicy):
        def decode(self, content: Any, response: Any) -> Any:
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
            try:
                return base64.b64decode(text.encode("utf-8"), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):  # not base64, or not UTF-8 inside: show it as it came
                return text

    return LenientBase64DecodePolicy()


def ensure_queue(client: Any) -> Any:
    """Create the queue if it does not exist yet (as the Functions host does); returns the client."""
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


class RenewalQueue:
    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return self._client.queue_name

    def send(self, request: RenewalRequest, delay_seconds: int = 0) -> None:
        self._client.send_message(request.to_json(), visibility_timeout=max(0, int(delay_seconds)) or None)


@dataclass(frozen=True)
class FailedEntry:
    id: str
    store: str  # "failed" or "poison"
    body: str
    reason: str
    message: str
    failed_at: str
    vault: str | None = None
    name: str | None = None


class FailedStore:
    def __init__(
        self,
        failed_client: Any,
        poison_client: Any,
        renewals: RenewalQueue,
        parse_body: Callable[[str], RenewalRequest],
    ) -> None:
        """``parse_body`` reads a poison message as the renew function would (ours or a raw event)."""
        self._stores = {"failed": failed_client, "poison": poison_client}
        self._renewals = renewals
        self._parse_body = parse_body

    def add(self, request: RenewalRequest | None, raw: str, reason: str, message: str, now: datetime) -> None:
        record = {
            "reason": reason,
            "message": message,
            "failed_at": now.isoformat(),
            "request": json.loads(request.to_json()) if request else None,
            "raw": None if request else raw[:4096],
        }
        self._client("failed").send_message(json.dumps(record), time_to_live=-1)

    def list(self) -> list[FailedEntry]:
        """Every entry of both stores; each message is briefly hidden while read, then made visible again."""
        read = self._read_all()
        try:
            return [self._entry(store, message) for store, message in read]
        finally:  # whatever happened, nothing stays hidden from the next look
            self._show_again(read)

    def _show_again(self, read: Sequence[tuple[str, Any]]) -> None:
        for store, message in read:
            with contextlib.suppress(Exception):  # a message deleted meanwhile has nothing to show
                self._stores[store].update_message(message, visibility_timeout=0)

    def retry(self, ids: Sequence[str] | None = None) -> list[FailedEntry]:
        """Re-drive entries (all when ``ids`` is None) as fresh first attempts; returns what was re-driven."""
        wanted = set(ids) if ids else None
        done: list[FailedEntry] = []
        read = self._read_all()
        untouched = list(read)
        try:
            for item in read:
                store, message = item
                entry = self._entry(store, message)
                request = self._request_of(entry) if wanted is None or entry.id in wanted else None
                if request is None:
                    continue
                self._redrive(request)
                self._stores[store].delete_message(message)
                untouched.remove(item)
                done.append(entry)
        finally:  # what was not re-driven is visible again at once, also after an error
            self._show_again(untouched)
        return done

    def _redrive(self, request: RenewalRequest) -> None:
        """A fresh first attempt of the entry's renewal."""
        fresh = RenewalRequest(
            vault=request.vault, name=request.name, trigger="manual", version=request.version, force=request.force
        )
        self._renewals.send(fresh)

    def _client(self, store: str) -> Any:
        return ensure_queue(self._stores[store])

    def _read_all(self) -> list[tuple[str, Any]]:
        """Every message of both stores, each hidden for a while so that one pass sees each message once."""
        from azure.core.exceptions import ResourceNotFoundError

        found: list[tuple[str, Any]] = []
        try:
            for store, client in self._stores.items():
                try:
                    while batch := list(
                        client.receive_messages(max_messages=32, visibility_timeout=LIST_VISIBILITY_SECONDS)
                    ):
                        found += [(store, message) for message in batch]
                except ResourceNotFoundError:
                    continue
        except BaseException:
            self._show_again(found)
            raise
        return found

    def _entry(self, store: str, message: Any) -> FailedEntry:
        body = message.content if isinstance(message.content, str) else message.content.decode("utf-8", "replace")
        try:
            record = json.loads(body)
        except ValueError:
            record = None
        if store == "failed" and isinstance(record, dict):
            request = record.get("request") or {}
            return FailedEntry(
                message.id,
                store,
                body,
                record.get("reason", "?"),
                record.get("message", ""),
                record.get("failed_at", ""),
                request.get("vault"),
                request.get("name"),
            )
        inserted = message.inserted_on.isoformat() if getattr(message, "inserted_on", None) else ""
        parsed = self._poison_request(body) if store == "poison" else None
        reason, why = (
            ("poison", "the Functions host gave up after maxDequeueCount attempts")
            if parsed
            else (UNREADABLE, "neither a certlc renewal request nor a Key Vault event certlc manages")
        )
        return FailedEntry(
            message.id,
            store,
            body,
            reason,
            why,
            inserted,
            parsed.vault if parsed else None,
            parsed.name if parsed else None,
        )

    def _request_of(self, entry: FailedEntry) -> RenewalRequest | None:
        if entry.store == "poison":
            return self._poison_request(entry.body)
        try:
            request = json.loads(entry.body).get("request")
            return RenewalRequest.from_dict(request) if isinstance(request, dict) else None
        except ValueError:  # InvalidMessage is a ValueError too
            return None

    def _poison_request(self, body: str) -> RenewalRequest | None:
        try:
            return self._parse_body(body)
        except ValueError:
            return None
