"""The composition root: settings, keys, policy and engine, made once per process.

The app and the CLI both build one :class:`Runtime`; routes get it through :data:`RuntimeDep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from vault.auth.tokens import Signer
from vault.config import Settings
from vault.crypto import Envelope, KeyMaterial, load_key_material
from vault.db import make_engine
from vault.policy import Policy, load_policy


@dataclass(frozen=True, repr=False)
class Runtime:
    settings: Settings
    keys: KeyMaterial
    envelope: Envelope
    policy: Policy
    engine: Engine
    signer: Signer

    @classmethod
    def build(cls, settings: Settings | None = None, *, engine: Engine | None = None) -> Runtime:
        settings = settings or Settings()
        keys = load_key_material(settings)
        reload = None
        if settings.master_keys is None:  # the local key file may be rotated by the CLI

            def reload() -> KeyMaterial:
                return load_key_material(settings, create=False)

        return cls(
            settings=settings,
            keys=keys,
            envelope=Envelope(keys, reload=reload),
            policy=load_policy(settings.resolved_policies_dir),
            engine=engine or make_engine(settings.resolved_database_url),
            signer=Signer(keys),
        )


async def get_runtime(request: Request) -> Runtime:  # async: no thread hop for an attribute
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
