"""dsr: data-subject requests; legal hold and tombstone fields on the customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer") as batch_op:
        batch_op.add_column(
            sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "legal_hold_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("erased_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )
    op.create_table(
        "dsr_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("received_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("extension_months", sa.Integer(), nullable=False),
        sa.Column("extension_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("handled_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("closed_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_dsr_request_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dsr_request")),
    )
    with op.batch_alter_table("dsr_request") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dsr_request_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index("ix_dsr_request_status_due_at", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dsr_request") as batch_op:
        batch_op.drop_index("ix_dsr_request_status_due_at")
        batch_op.drop_index(batch_op.f("ix_dsr_request_customer_id"))
    op.drop_table("dsr_request")
    with op.batch_alter_table("customer") as batch_op:
        batch_op.drop_column("erased_by")
        batch_op.drop_column("legal_hold_reason")
        batch_op.drop_column("legal_hold")
