"""Running byte count per study

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 08:30:00.000000

Why: dcmqrscp's per-study byte quota was checked with a ``SUM`` over the study's instances
on every ingest, a cost that grows with the study (a few hundred microseconds at 300
instances, milliseconds at thousands).  ``studies.total_bytes`` is kept by the index in the
same transaction as each change of the study's instances, so the check is one value read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("total_bytes", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE studies SET total_bytes = COALESCE(("
        "SELECT SUM(instances.size) FROM instances "
        "JOIN series ON instances.series_pk = series.pk "
        "WHERE series.study_pk = studies.pk), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("total_bytes")
