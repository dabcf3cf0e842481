"""dsr: erasure_certificate, the signed certificate of every erasure

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vault.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasure_certificate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dsr_request_id", sa.Uuid(), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_erasure_certificate_customer_id_customer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_certificate")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_erasure_certificate_customer_id")),
    )


def downgrade() -> None:
    op.drop_table("erasure_certificate")
