"""C-FIND indexes: PN and description prefixes, series date

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:50:00.000000

Why: ``storage.query`` turns a wildcard with a literal prefix (``DOE*``) into a range on the
column.  SQLite serves it from a plain index (its LIKE ignores case and never uses one);
PostgreSQL serves the pattern operators ``~>=~``/``~<~`` (byte order, whatever the database
collation) from a ``text_pattern_ops`` index, so ``ix_patients_name_key`` is rebuilt with
that operator class there.  Series-level keys get their own ``(ae_title, ...)`` indexes.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        op.drop_index("ix_patients_name_key", table_name="patients")
        op.create_index(
            "ix_patients_name_key",
            "patients",
            ["ae_title", "patient_name_key"],
            postgresql_ops={"patient_name_key": "text_pattern_ops"},
        )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index("ix_series_date", ["ae_title", "series_date"], unique=False)
        batch_op.create_index(
            "ix_series_description",
            ["ae_title", "series_description"],
            unique=False,
            postgresql_ops={"series_description": "text_pattern_ops"},
        )


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("ix_series_description")
        batch_op.drop_index("ix_series_date")
    if _postgresql():
        op.drop_index("ix_patients_name_key", table_name="patients")
        op.create_index("ix_patients_name_key", "patients", ["ae_title", "patient_name_key"])
