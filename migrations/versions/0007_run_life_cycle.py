"""Run life cycle: a run can be retired (hidden unless asked for) and restored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

``run.retired_at`` (when, or NULL for a run in use) and ``run.retired_reason`` are the
projection of the ``run_retired`` and ``run_restored`` events; ``run_renamed`` and
``run_untagged`` change columns that exist.  A store at 0006 holds none of these events,
so the new columns start empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both backends (SQLite adds and drops columns in place since 3.35):
# a batch copy of ``run`` would have to drop the table the other projections refer to.
def upgrade() -> None:
    op.add_column("run", sa.Column("retired_at", sa.String(32)))
    op.add_column("run", sa.Column("retired_reason", sa.Text))


def downgrade() -> None:
    op.drop_column("run", "retired_reason")
    op.drop_column("run", "retired_at")
