"""consent: consent_confirmation.mail_id, the double opt-in mail that carries the token

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent_confirmation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mail_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_confirmation", schema=None) as batch_op:
        batch_op.drop_column("mail_id")
