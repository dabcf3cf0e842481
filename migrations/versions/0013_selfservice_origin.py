"""selfservice: who started a link and the session it opens (``origin``)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows from before: nobody recorded who asked; "" reads as unknown and is not evidence.
    for table in ("selfservice_link", "selfservice_session"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "origin",
                    sqlmodel.sql.sqltypes.AutoString(length=80),
                    nullable=False,
                    server_default="",
                )
            )


def downgrade() -> None:
    for table in ("selfservice_session", "selfservice_link"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("origin")
