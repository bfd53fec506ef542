"""``certlc failed list|retry|remove|purge``: what could not be renewed, re-driving it once fixed, and dropping it.

Exit 0 when everything asked for was done; 1 when an id is unknown or an entry cannot be re-driven (it names no
certificate of a vault in ``CERTLC_VAULTS``: remove it instead); 2 for a usage mistake. Every entry re-driven,
removed or purged is audited as an operator action (``certlc.commands.operator``): who, where, which certificate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import asdict
from typing import Any

HIDE_SECONDS = 30  # each message is hidden while one pass reads the store, then shown again or deleted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from certlc.cli import global_options

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(  # -o json after the action too
            name, help=help_text, description=help_text, parents=[global_options()]
        )

    action("list", "list failed and poison renewals (-o json: as JSON)")
    retry = action("retry", "re-drive entries as fresh renewals")
    retry.add_argument("ids", nargs="*", help="entry ids from `certlc failed list`")
    retry.add_argument("--all", action="store_true", help="re-drive every entry that names a certificate")
    remove = action("remove", "delete entries (once dealt with, or when they cannot be re-driven)")
    remove.add_argument("ids", nargs="+", help="entry ids from `certlc failed list`")
    purge = action("purge", "delete every failed and poison entry")
    purge.add_argument("--yes", action="store_true", help="really delete every entry")


def run(args: argparse.Namespace) -> int:
    from certlc.cli import UserError
    from certlc.commands.common import checked_runtime
    from certlc.commands.operator import current_operator, entry_target, operator_audit, record_action

    if args.action == "retry" and not args.ids and not args.all:
        raise UserError("name the entries to retry (ids from `certlc failed list`) or pass --all")
    if args.action == "retry" and args.ids and args.all:
        raise UserError("pass entry ids or --all, not both")
    if args.action == "purge" and not args.yes:
        raise UserError("purge deletes every failed and poison entry: pass --yes")
    runtime = checked_runtime(args.env, storage_only=True)
    store = runtime.failed
    if args.action == "list":
        return _list(store, args.output == "json")
    audit, operator = operator_audit(runtime.env, runtime.clock), current_operator()
    if args.action == "retry":
        code, done = _retry(store, runtime.settings.vaults, args.ids, args.all)
        record_action(audit, "failed_retry", map(entry_target, done), operator)
        return code
    clients = _store_clients(args.env, runtime.settings)
    known = {e.id: e for e in store.list()}  # what each entry names, for the audit
    if args.action == "remove":
        code, removed = _remove(clients, args.ids)
        record_action(audit, "failed_remove", [entry_target(known[i]) for i in removed if i in known], operator)
        return code
    for client in clients.values():
        _clear(client)
    record_action(audit, "failed_purge", map(entry_target, known.values()), operator)
    print("purged the failed and poison entries")
    return 0


def _list(store: Any, as_json: bool) -> int:
    entries = store.list()
    if as_json:
        print(json.dumps([asdict(e) for e in entries], indent=2))
        return 0
    if not entries:
        print("no failed renewals")
    for e in entries:
        print(f"{e.id}  {e.store:6}  {e.failed_at[:19]:19}  {e.vault or '?'}/{e.name or '?'}  {e.reason}: {e.message}")
    return 0


def retriable(entry: Any, vaults: Any) -> bool:
    """An entry that names a certificate of a configured vault; anything else would come back as a worse entry."""
    return bool(entry.vault and entry.name and entry.vault.lower() in vaults)


def _retry(store: Any, vaults: Any, ids: list[str], everything: bool) -> tuple[int, list[Any]]:
    """The exit code, and the entries re-driven."""
    entries = {e.id: e for e in store.list()}
    wanted = list(entries) if everything else ids
    chosen = [i for i in wanted if i in entries and retriable(entries[i], vaults)]
    done = store.retry(chosen) if chosen else []  # never None: that would mean every entry
    for e in done:
        print(f"re-driven: {e.vault}/{e.name} ({e.id})")
    left = [i for i in wanted if i not in {e.id for e in done}]
    for entry_id in left:
        if entry_id not in entries:
            print(f"not re-driven: {entry_id}: no such entry")
        else:
            why = "it names no certificate of a vault in CERTLC_VAULTS"
            print(f"not re-driven: {entry_id}: {why}; `certlc failed remove {entry_id}` drops it")
    return (1 if left else 0), done


def _store_clients(env: Any, settings: Any) -> dict[str, Any]:
    from renewal.clients import queue_client
    from renewal.queue import lenient_decode_policy

    return {
        store: queue_client(env, name, message_decode_policy=lenient_decode_policy())
        for store, name in (("failed", settings.failed_queue_name), ("poison", settings.poison_queue_name))
    }


def _remove(clients: dict[str, Any], ids: list[str]) -> tuple[int, set[str]]:
    """The exit code, and the ids removed."""
    from azure.core.exceptions import ResourceNotFoundError

    wanted, removed = set(ids), set()
    for client in clients.values():
        seen = []
        try:
            while batch := list(client.receive_messages(max_messages=32, visibility_timeout=HIDE_SECONDS)):
                seen += batch
        except ResourceNotFoundError:
            continue
        for message in seen:
            if message.id in wanted:
                client.delete_message(message)
                removed.add(message.id)
            else:
                client.update_message(message, visibility_timeout=0)
    for entry_id in ids:
        print(f"removed: {entry_id}" if entry_id in removed else f"not removed: {entry_id}: no such entry")
    return (0 if removed == wanted else 1), removed


def _clear(client: Any) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        client.clear_messages()
