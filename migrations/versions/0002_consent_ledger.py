"""consent_ledger: append-only consent_event, consent_state projection, tokens, idempotency

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

consent_event refuses UPDATE and DELETE in the database itself (and TRUNCATE on PostgreSQL):
the ledger is the proof of consent (GDPR Art. 7(1)) and must not be quietly rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = [
    (
        "consent_event_no_update",
        "CREATE TRIGGER consent_event_no_update BEFORE UPDATE ON consent_event "
        "BEGIN SELECT RAISE(ABORT, 'consent_event is append-only'); END",
    ),
    (
        "consent_event_no_delete",
        "CREATE TRIGGER consent_event_no_delete BEFORE DELETE ON consent_event "
        "BEGIN SELECT RAISE(ABORT, 'consent_event is append-only'); END",
    ),
]

_PG_FUNCTION = """
CREATE FUNCTION consent_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_event is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
_PG_TRIGGERS = [
    "CREATE TRIGGER consent_event_no_update_delete BEFORE UPDATE OR DELETE ON consent_event "
    "FOR EACH ROW EXECUTE FUNCTION consent_event_append_only()",
    "CREATE TRIGGER consent_event_no_truncate BEFORE TRUNCATE ON consent_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION consent_event_append_only()",
]


def upgrade() -> None:
    op.create_table(
        "consent_confirmation",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_consent_confirmation_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_consent_confirmation")),
    )
    with op.batch_alter_table("consent_confirmation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_confirmation_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "consent_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose_version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("occurred_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("notice_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        # no ON DELETE: the ledger outlives the customer row (erasure keeps it as proof)
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_consent_event_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_consent_event")),
        sa.UniqueConstraint("id", name=op.f("uq_consent_event_id")),
    )
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_event_customer_purpose_occurred",
            ["customer_id", "purpose", "occurred_at"],
            unique=False,
        )

    op.create_table(
        "consent_idempotency",
        sa.Column("client", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_consent_idempotency_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client", "key", name=op.f("pk_consent_idempotency")),
    )
    with op.batch_alter_table("consent_idempotency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_idempotency_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_idempotency_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "consent_state",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("granted_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_consent_state_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "purpose", name=op.f("pk_consent_state")),
    )
    with op.batch_alter_table("consent_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_state_purpose_status", ["purpose", "status"], unique=False
        )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for _, ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)
    elif dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name, _ in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_event_no_truncate ON consent_event")
        op.execute("DROP TRIGGER IF EXISTS consent_event_no_update_delete ON consent_event")
        op.execute("DROP FUNCTION IF EXISTS consent_event_append_only()")

    with op.batch_alter_table("consent_state", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_state_purpose_status")
    op.drop_table("consent_state")

    with op.batch_alter_table("consent_idempotency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_idempotency_customer_id"))
        batch_op.drop_index(batch_op.f("ix_consent_idempotency_created_at"))
    op.drop_table("consent_idempotency")

    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_event_customer_purpose_occurred")
    op.drop_table("consent_event")

    with op.batch_alter_table("consent_confirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_confirmation_customer_id"))
    op.drop_table("consent_confirmation")
