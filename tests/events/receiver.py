"""A webhook receiver for tests: a threaded HTTP server on 127.0.0.1 that checks every delivery
with the ``standardwebhooks`` library (an implementation independent of the vault's signing
code path) and records it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    received_at: float
    answered: int

    @property
    def accepted(self) -> bool:
        return 200 <= self.answered < 300

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    secret: str | None = None
    status: int = 204
    delay: float = 0.0
    # answers for the next requests, consumed first (e.g. [500, 500] then `status`)
    script: list[int] = field(default_factory=list)
    redirect_to: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)  # ids received while already in flight
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                msg_id = headers.get("webhook-id", "")
                with receiver._lock:
                    if msg_id in receiver._in_flight:
                        receiver.overlaps.append(msg_id)
                    receiver._in_flight.add(msg_id)
                try:
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    verified = False
                    if receiver.secret is not None:
                        try:
                            Webhook(receiver.secret).verify(body, headers)
                            verified = True
                        except WebhookVerificationError:
                            verified = False
                    with receiver._lock:
                        status = receiver.script.pop(0) if receiver.script else receiver.status
                        if receiver.redirect_to:
                            status = 302
                        elif receiver.secret is not None and not verified:
                            status = 400
                        receiver.deliveries.append(
                            Delivery(self.path, headers, body, verified, time.monotonic(), status)
                        )
                    self.send_response(status)
                    if receiver.redirect_to:
                        self.send_header("location", receiver.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                finally:
                    with receiver._lock:
                        receiver._in_flight.discard(msg_id)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.accepted]

    def ids(self) -> list[str]:
        """Event ids of the accepted deliveries, in arrival order."""
        return [d.event_id for d in self.accepted()]

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` distinct events were accepted."""
        end = time.monotonic() + timeout
        while len(set(self.ids())) < n:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True
