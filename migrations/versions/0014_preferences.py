"""preferences: preference_event (append-only), its projection preference_state and
preference_choice, and contact (reported contacts the frequency caps count)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = [
    (
        "preference_event_no_update",
        "CREATE TRIGGER preference_event_no_update BEFORE UPDATE ON preference_event "
        "BEGIN SELECT RAISE(ABORT, 'preference_event is append-only'); END",
    ),
    (
        "preference_event_no_delete",
        "CREATE TRIGGER preference_event_no_delete BEFORE DELETE ON preference_event "
        "BEGIN SELECT RAISE(ABORT, 'preference_event is append-only'); END",
    ),
]
_PG_FUNCTION = """
CREATE FUNCTION preference_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'preference_event is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
_PG_TRIGGERS = [
    "CREATE TRIGGER preference_event_no_update_delete BEFORE UPDATE OR DELETE ON "
    "preference_event FOR EACH ROW EXECUTE FUNCTION preference_event_append_only()",
    "CREATE TRIGGER preference_event_no_truncate BEFORE TRUNCATE ON preference_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION preference_event_append_only()",
]


def _id_column(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "preference_event",
        _id_column("seq"),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_preference_event_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_preference_event")),
        sa.UniqueConstraint("id", name=op.f("uq_preference_event_id")),
    )
    with op.batch_alter_table("preference_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_preference_event_customer_occurred", ["customer_id", "occurred_at"], unique=False
        )
    op.create_table(
        "preference_state",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("paused_until", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_preference_state_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_preference_state")),
    )
    op.create_table(
        "preference_choice",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_preference_choice_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "purpose", "kind", "name", name=op.f("pk_preference_choice")
        ),
    )
    op.create_table(
        "contact",
        _id_column("id"),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("contact_channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sent_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("recorded_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_contact_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_customer_purpose_sent",
            ["customer_id", "purpose", "sent_at"],
            unique=False,
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
        op.execute("DROP TRIGGER IF EXISTS preference_event_no_truncate ON preference_event")
        op.execute("DROP TRIGGER IF EXISTS preference_event_no_update_delete ON preference_event")
        op.execute("DROP FUNCTION IF EXISTS preference_event_append_only()")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_customer_purpose_sent")
    op.drop_table("contact")
    op.drop_table("preference_choice")
    op.drop_table("preference_state")
    with op.batch_alter_table("preference_event", schema=None) as batch_op:
        batch_op.drop_index("ix_preference_event_customer_occurred")
    op.drop_table("preference_event")
