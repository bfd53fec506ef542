"""Local Logs Ingestion API: the DCR stream upload the ingest function uses, for the local stack.

``start(state_dir, template_path)`` serves HTTPS on a free loopback port with its own
CA, checks rows against the streams declared in the ARM template infra/ deploys (the
status snapshot's and the renewal history's), and keeps each stream's rows in
``<state>/logs/rows/<stream>.jsonl`` for ``certlc dashboard``.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM
from localazure.emulators.logs.dcr import default_template, load_streams
from localazure.emulators.logs.server import LogsServer, RowStore
from localazure.pki import loopback_tls, server_context


@dataclass
class RunningLogsEmulator:
    endpoint: str
    dcr_immutable_id: str
    stream: str
    ca_bundle: str
    token: str
    rows_path: Path
    _server: LogsServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def rows(self, stream: str | None = None) -> list[dict[str, Any]]:
        return self._server.store.rows(stream or self.stream)

    def requests(self) -> list[dict[str, Any]]:
        with self._server.store.lock:
            return list(self._server.store.requests)

    def settings(self) -> dict[str, str]:
        """The app settings that point ``ingestion`` (the status snapshot and the renewal history) at this emulator."""
        return {
            "CERTLC_DCE_ENDPOINT": self.endpoint,
            "CERTLC_DCR_IMMUTABLE_ID": self.dcr_immutable_id,
            "CERTLC_DCR_STREAM": self.stream,
            "CERTLC_DCR_HISTORY_STREAM": HISTORY_STREAM,
            "CERTLC_LOGS_CA_BUNDLE": self.ca_bundle,
            "CERTLC_LOGS_TOKEN": self.token,
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _identity(directory: Path, token: str | None) -> tuple[str, str]:
    """The rule id and token survive restarts, so settings written once stay valid."""
    path = directory / "dcr.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    rule_id = saved.get("dcrImmutableId") or f"dcr-{secrets.token_hex(16)}"
    token = token or saved.get("token") or secrets.token_urlsafe(32)
    path.write_text(json.dumps({"dcrImmutableId": rule_id, "token": token}), encoding="utf-8")
    path.chmod(0o600)
    return rule_id, token


def start(
    state_dir: Path | str,
    template_path: Path | str | None = None,
    *,
    port: int = 0,
    token: str | None = None,
) -> RunningLogsEmulator:
    directory = Path(state_dir) / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    streams = load_streams(Path(template_path) if template_path else default_template())
    tls = loopback_tls(directory / "tls", "certlc logs emulator")
    rule_id, token = _identity(directory, token)
    store = RowStore(directory / "rows")
    server = LogsServer(("127.0.0.1", port), rule_id, streams, token, store)
    server.socket = server_context(tls).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="certlc-logs-emulator", daemon=True)
    thread.start()
    stream = next(iter(streams))
    return RunningLogsEmulator(
        endpoint=f"https://127.0.0.1:{server.server_address[1]}",
        dcr_immutable_id=rule_id,
        stream=stream,
        ca_bundle=str(tls.ca_pem),
        token=token,
        rows_path=store.path(stream),
        _server=server,
        _thread=thread,
    )
