"""Outbox and webhook delivery: the cost of emit() and deliveries per second.

    python -m bench.webhooks [--events N] [--customers N] [--workers N] [--database-url URL]

- emit: one outbox INSERT in the caller's transaction (what a consent write pays), measured as
  N emits in one transaction.
- delivery: N events (spread over --customers, so per-customer ordering allows parallelism) to
  one subscription on a local receiver (HTTP/1.1 keep-alive, no verification), by --workers
  in-process workers (each with --concurrency threads), from emit to the last 2xx.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlmodel import Session

from bench.common import machine, throwaway_runtime
from vault.events import outbox as events_outbox
from vault.events import webhooks as events_webhooks
from vault.events.worker import Worker
from vault.provenance import Caller


class _Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(
    events: int = 5000,
    customers: int = 500,
    workers: int = 1,
    concurrency: int = 8,
    database_url: str | None = None,
) -> dict[str, float]:
    receiver = _Receiver()
    try:
        with throwaway_runtime(database_url) as rt:
            from dataclasses import replace

            settings = rt.settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})
            rt = replace(rt, settings=settings)
            with Session(rt.engine) as s:
                events_webhooks.create_webhook(
                    session=s,
                    envelope=rt.envelope,
                    settings=settings,
                    url=receiver.url,
                    events=["customer.updated"],
                    by=Caller("bench"),
                    subscriber=None,
                )
                s.commit()
            ids = [uuid.uuid4() for _ in range(customers)]
            with Session(rt.engine) as s:
                started = time.perf_counter()
                for i in range(events):
                    events_outbox.emit(
                        session=s,
                        type="customer.updated",
                        customer_id=ids[i % customers],
                        data={"attributes": ["email"]},
                    )
                emit_s = time.perf_counter() - started
                s.commit()
            pool = [Worker(rt, concurrency=concurrency, batch_size=100) for _ in range(workers)]
            threads = [threading.Thread(target=w.run, daemon=True) for w in pool]
            started = time.perf_counter()
            for t in threads:
                t.start()
            while receiver.count < events and time.perf_counter() - started < 600:
                time.sleep(0.01)
            deliver_s = time.perf_counter() - started
            for w in pool:
                w.stop()
            for t in threads:
                t.join()
            for w in pool:
                w.close()
    finally:
        receiver.close()
    return {
        "emit_us": emit_s / events * 1e6,
        "delivered": receiver.count,
        "deliveries_per_s": receiver.count / deliver_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--database-url", default=None)
    a = p.parse_args()
    r = run(a.events, a.customers, a.workers, a.concurrency, a.database_url)
    print(machine())
    print(f"emit: {r['emit_us']:.1f} us/event")
    print(f"delivery: {r['delivered']:,} events, {r['deliveries_per_s']:,.0f} deliveries/s")


if __name__ == "__main__":
    main()
