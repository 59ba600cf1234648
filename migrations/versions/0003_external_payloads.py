"""Record payloads may live outside the database (a directory or S3): ``location``
says where; such records keep an empty ``data``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Only a column is added, in place on both backends: rebuilding ``record`` (as
SQLite's batch mode would to relax a NOT NULL) would drop its append-only
triggers and trip the foreign keys that snapshots hold on it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("record", sa.Column("location", sa.Text, nullable=True))


def downgrade() -> None:
    # Payloads stored elsewhere cannot be folded back into 0002: refuse rather than lose them.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM record WHERE location IS NOT NULL")).scalar():
        raise RuntimeError("records whose payload lives outside the database cannot be downgraded to 0002")
    op.drop_column("record", "location")
