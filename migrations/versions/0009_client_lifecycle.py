"""auth: client lifecycle (soft delete, secret rotations)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vault.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.add_column(
            sa.Column("deleted_at", vault.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("secret_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("secret_rotated_at", vault.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.drop_column("secret_rotated_at")
        batch.drop_column("secret_version")
        batch.drop_column("deleted_at")
