"""A stand-in of the payment platform's status query, for the demo and the tests.

It knows how each payment it was told about ended, and answers the status query as the
platform would: 1 success / 4 failed with the strings it signs and their checksum, or 3 while
it knows no final result. The demo then reconciles its pending payments against it; tests
also hand it final payloads as they are (a forged one included) and read what it was asked.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

import orjson

from adapters.kinds.payment_signature import sign_as_platform

STATUS_CODES = {"success": 1, "failed": 4}


class PaymentPlatformStandin:
    """An HTTP status query on a free loopback port, answering from ``finals``."""

    def __init__(self, secret: str, finals: dict[str, dict[str, Any]] | None = None) -> None:
        self.secret = secret
        self.finals: dict[str, dict[str, Any]] = dict(finals or {})  # reference -> signed payload
        self.asked: list[dict[str, Any]] = []  # the status queries, in the order they came
        platform = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                platform.asked.append(request)
                body = orjson.dumps(platform.answer(str(request.get("referenceId"))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/query-status"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settle(self, pending: dict[str, Any], result: str = "success") -> None:
        """Decide how a pending payment ended (the platform's own record of it)."""
        payload = {k: v for k, v in pending["payload"].items() if k not in ("signed", "checksum")}
        payload.update(result=result, error_code="00" if result == "success" else "24")
        self.finals[payload["reference"]] = sign_as_platform(payload, self.secret)

    def answer(self, reference: str) -> dict[str, Any]:
        final = self.finals.get(reference)
        if final is None:
            return {"status": 3}
        code = STATUS_CODES[final["result"]]
        return {"status": code, "signed": final["signed"], "checksum": final["checksum"]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
