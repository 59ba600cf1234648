"""Indexes the query layer needs: parameters by (program, flag, value), snapshots by record.

The parameter index ends in run_id so that filters are answered from the index alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_parameter_lookup", "parameter", ["program", "flag", "num_value", "run_id"])
    op.create_index("ix_snapshot_record", "snapshot", ["record_hash"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_record", table_name="snapshot")
    op.drop_index("ix_parameter_lookup", table_name="parameter")
