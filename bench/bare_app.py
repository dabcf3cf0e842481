"""The baseline: the fastest bare FastAPI endpoint (``async def``, a constant JSON), served
exactly like the vault. A sync ``def`` would run in the thread pool and halve the baseline, which
flatters every ratio against it (DESIGN.md section 6)."""

from fastapi import FastAPI

app = FastAPI()
BODY = {"customer_id": "00000000-0000-0000-0000-000000000000", "purpose": "x", "attributes": {}}


@app.get("/constant")
async def constant() -> dict:
    return BODY
