"""selfservice: single-use magic links and server-side sessions of the self-service page

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import vault.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "selfservice_link",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("issued_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_selfservice_link_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_selfservice_link")),
    )
    with op.batch_alter_table("selfservice_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_selfservice_link_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "selfservice_session",
        sa.Column("id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("gpc_refused", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_selfservice_session_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_selfservice_session")),
    )
    with op.batch_alter_table("selfservice_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_selfservice_session_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("selfservice_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_selfservice_session_customer_id"))

    op.drop_table("selfservice_session")
    with op.batch_alter_table("selfservice_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_selfservice_link_customer_id"))

    op.drop_table("selfservice_link")
