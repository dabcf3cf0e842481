"""Runs :func:`vault.audit.service.seal` in its own short transactions: in a background thread
of every server process, before every verification, and from ``vault audit seal``.

Unlike services, these functions own their transactions: sealing must commit on its own, never
inside a request's transaction (it would hold the chain lock until the response).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session

from vault.audit import service
from vault.crypto import KeyMaterial
from vault.db import reader

if TYPE_CHECKING:
    from vault.runtime import Runtime

log = logging.getLogger("vault.audit")


def seal_pending(
    *,
    engine: Engine,
    keys: KeyMaterial,
    checkpoint: bool | None = None,
    checkpoint_interval: float = 10.0,
    batch_size: int = service.SEAL_BATCH,
) -> service.SealResult:
    """Chain every committed unchained event, one committed batch at a time."""
    sealed = 0
    last_cp = None
    while True:
        with Session(engine) as session:
            result = service.seal(
                session=session,
                keys=keys,
                batch_size=batch_size,
                checkpoint=checkpoint,
                checkpoint_interval=checkpoint_interval,
            )
            session.commit()
        sealed += result.sealed
        last_cp = result.checkpoint_seq or last_cp
        if result.sealed < batch_size:
            return service.SealResult(
                sealed=sealed, head_seq=result.head_seq, checkpoint_seq=last_cp
            )


class Sealer:
    """A daemon thread that seals every ``interval`` seconds while there is work."""

    def __init__(
        self, *, engine: Engine, keys: KeyMaterial, interval: float, checkpoint_interval: float
    ):
        self.engine = engine
        self.keys = keys
        self.interval = interval
        self.checkpoint_interval = checkpoint_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def tick(self) -> None:
        with reader(self.engine).connect() as conn:
            if not service.needs_sealing(conn):
                return
        seal_pending(
            engine=self.engine, keys=self.keys, checkpoint_interval=self.checkpoint_interval
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # keep sealing after a transient database error
                log.warning("audit sealing failed: %s", type(exc).__name__)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:  # leave a checkpoint over what this process wrote
            seal_pending(engine=self.engine, keys=self.keys, checkpoint=True)
        except Exception as exc:
            log.warning("final audit sealing failed: %s", type(exc).__name__)


def start_sealer(runtime: Runtime) -> Sealer | None:
    """Start the background sealer of this process (None when ``VAULT_AUDIT_SEAL_INTERVAL=0``).

    Call from the app lifespan and ``stop()`` it on shutdown."""
    interval = runtime.settings.audit_seal_interval
    if interval <= 0:
        return None
    return Sealer(
        engine=runtime.engine,
        keys=runtime.keys,
        interval=interval,
        checkpoint_interval=runtime.settings.audit_checkpoint_interval,
    ).start()


@contextmanager
def running_sealer(runtime: Runtime) -> Iterator[Sealer | None]:
    """``with running_sealer(runtime): ...`` — for the app lifespan."""
    sealer = start_sealer(runtime)
    try:
        yield sealer
    finally:
        if sealer is not None:
            sealer.stop()
