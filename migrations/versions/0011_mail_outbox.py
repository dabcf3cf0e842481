"""mail: mail_outbox, the encrypted outbox of mails to customers; mail_receipt, what was sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("template_version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("message_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_attempt_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_mail_outbox_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_outbox_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index("ix_mail_outbox_finished_at", ["finished_at"], unique=False)
        batch_op.create_index(
            "ix_mail_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
    op.create_table(
        "mail_receipt",
        sa.Column("mail_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("template_version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("transport", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("accepted_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mail_id", name=op.f("pk_mail_receipt")),
    )
    with op.batch_alter_table("mail_receipt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_receipt_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_receipt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_receipt_customer_id"))
    op.drop_table("mail_receipt")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_outbox_status_next_attempt_at")
        batch_op.drop_index("ix_mail_outbox_finished_at")
        batch_op.drop_index(batch_op.f("ix_mail_outbox_customer_id"))
    op.drop_table("mail_outbox")
