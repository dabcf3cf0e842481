"""The committed API contract: ``vault openapi`` writes it, a test compares it with the app."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


def generate() -> str:
    """The OpenAPI document as stable, sorted JSON. Independent of local keys and data."""
    from vault.app import create_app
    from vault.config import Settings
    from vault.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url="sqlite://")
        app = create_app(Runtime.build(settings))
        doc = app.openapi()
        app.state.runtime.engine.dispose()
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
