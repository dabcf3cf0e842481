"""dsr: coded reasons with encrypted notes instead of free-text reasons

Legal-hold, extension and closing reasons were free text, kept in rows that outlive erasure
(the customer tombstone, dsr_request) and in the audit log. They become codes (one enum per
kind, vault.dsr.models) with an optional note encrypted under the customer's key (the note
columns, LargeBinary). The restriction gets a coded ground and a note too.

Existing free text cannot be encrypted here (the migration holds no keys), so it is dropped:
every non-empty reason becomes ``other``. The downgrade keeps the codes as text and drops the
notes (their plaintext never was in the database).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATED = "other"
_CODE = sqlmodel.sql.sqltypes.AutoString(length=32)


def _to_codes(table: str, columns: Sequence[str]) -> None:
    """Free text out, ``other`` in (blank text: none)."""
    for name in columns:
        column = sa.column(name, sa.String())
        op.execute(
            sa.update(sa.table(table, column))
            .where(column.is_not(None))
            .values({name: sa.case((sa.func.trim(column) == "", None), else_=MIGRATED)})
        )


# The reason columns keep their type (VARCHAR(500)): changing it would make SQLite rebuild the
# customer table, and with foreign keys on, dropping the old one would cascade into
# customer_value. A code fits; the API accepts nothing else.


def upgrade() -> None:
    _to_codes("customer", ["legal_hold_reason"])
    _to_codes("dsr_request", ["extension_reason", "close_reason"])
    with op.batch_alter_table("customer", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("legal_hold_note", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("restriction_reason", _CODE, nullable=True))
        batch_op.add_column(sa.Column("restriction_note", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("dsr_request", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("extension_note", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("close_note", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # The codes stay in the reason columns as text; the notes go (they were never plaintext).
    # recreate="never": SQLite drops the columns in place (3.35+). Rebuilding the customer table
    # would drop the old one, and with foreign keys on that cascades into customer_value.
    with op.batch_alter_table("dsr_request", recreate="never") as batch_op:
        batch_op.drop_column("close_note")
        batch_op.drop_column("extension_note")
    with op.batch_alter_table("customer", recreate="never") as batch_op:
        batch_op.drop_column("restriction_note")
        batch_op.drop_column("restriction_reason")
        batch_op.drop_column("legal_hold_note")
