"""A cfssl that takes its time over a signing request and then refuses it: the CA a paused renewal holder waits
for in the fencing tests and the reliability matrix (the real ``cfssl serve`` cannot be told to be slow or to say no
to a profile it has)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any


class SlowRefusingCfssl:
    """A cfssl that takes its time over a signing request and then refuses it: the CA a paused holder waits for."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.asked = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.endswith("/info"):  # each profile its own policy, so none looks unknown
                    answer, status = {"usages": ["signing"], "expiry": body.get("profile") or "8760h"}, 200
                    answer = {"success": True, "result": {"certificate": "", **answer}, "errors": []}
                else:
                    outer.asked.set()
                    time.sleep(outer.delay)
                    answer, status = {"success": False, "errors": [{"code": 5300, "message": "policy refuses"}]}, 400
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
