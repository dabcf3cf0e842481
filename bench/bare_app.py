"""The baseline: a bare FastAPI endpoint serving a constant JSON, served exactly like the vault."""

from fastapi import FastAPI

app = FastAPI()
BODY = {"customer_id": "00000000-0000-0000-0000-000000000000", "purpose": "x", "attributes": {}}


@app.get("/constant")
def constant() -> dict:
    return BODY
