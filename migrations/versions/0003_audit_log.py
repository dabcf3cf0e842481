"""audit_log: append-only audit events, signed checkpoints, retention purges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Triggers (SQLite and PostgreSQL) make the three tables append-only:

* ``audit_event``: the only UPDATE allowed sets ``seq`` and ``hash`` of a row that has none yet
  (the sealer chaining it) and changes nothing else. DELETE only of chained rows with
  ``seq <= max(audit_purge.up_to_seq)``: ``vault audit purge`` inserts that permit first.
* ``audit_checkpoint``: no UPDATE; DELETE only below the newest purge anchor.
* ``audit_purge``: no UPDATE, no DELETE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Columns the sealer must never change.
_CONTENT = (
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "outcome",
    "customer_id",
    "purpose",
    "attributes",
    "reason",
    "request_id",
    "details",
)
_PURGE_LIMIT = "(SELECT coalesce(max(up_to_seq), 0) FROM audit_purge)"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    WHEN OLD.seq IS NOT NULL OR NEW.seq IS NULL OR NEW.hash IS NULL OR {
        " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _CONTENT)
    }
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END""",
    f"""CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN OLD.seq IS NULL OR OLD.seq > {_PURGE_LIMIT}
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (purge with vault audit purge)'); END""",
    """CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END""",
    f"""CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
    WHEN OLD.seq >= {_PURGE_LIMIT}
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END""",
    """CREATE TRIGGER audit_purge_no_update BEFORE UPDATE ON audit_purge
    BEGIN SELECT RAISE(ABORT, 'audit_purge is append-only'); END""",
    """CREATE TRIGGER audit_purge_no_delete BEFORE DELETE ON audit_purge
    BEGIN SELECT RAISE(ABORT, 'audit_purge is append-only'); END""",
]
_SQLITE_TRIGGER_NAMES = [
    "audit_event_no_update",
    "audit_event_no_delete",
    "audit_checkpoint_no_update",
    "audit_checkpoint_no_delete",
    "audit_purge_no_update",
    "audit_purge_no_delete",
]

_PG_FUNCTIONS = [
    f"""CREATE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.seq IS NOT NULL AND OLD.seq <= {_PURGE_LIMIT} THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only (purge with vault audit purge)'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
     AND ({", ".join(f"NEW.{c}" for c in _CONTENT)})
         IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _CONTENT)}) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    f"""CREATE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.seq < {_PURGE_LIMIT} THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_checkpoint is append-only'
    USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    """CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
    USING ERRCODE = 'integrity_constraint_violation';
END $$""",
]
_PG_TRIGGERS = [
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard()""",
    """CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard()""",
    """CREATE TRIGGER audit_purge_append_only BEFORE UPDATE OR DELETE ON audit_purge
    FOR EACH ROW EXECUTE FUNCTION audit_refuse()""",
    *(
        f"""CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()"""
        for t in ("audit_event", "audit_checkpoint", "audit_purge")
    ),
]


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", BigId, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("attributes", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("hash", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_event_seq")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_event_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_event_occurred_at"), ["occurred_at"], unique=False
        )
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "audit_purge",
        sa.Column("id", BigId, nullable=False),
        sa.Column("up_to_seq", sa.BigInteger(), nullable=False),
        sa.Column("purged_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purge")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for stmt in (*_PG_FUNCTIONS, *_PG_TRIGGERS):
            op.execute(stmt)
    else:
        for stmt in _SQLITE_TRIGGERS:
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_event", "audit_checkpoint", "audit_purge"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        for fn in ("audit_event_guard", "audit_checkpoint_guard", "audit_refuse"):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("audit_purge")
    op.drop_table("audit_checkpoint")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_event_customer_id"))
    op.drop_table("audit_event")
