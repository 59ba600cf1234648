"""Packed stories: a record row may name the pack that holds its story's text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

kira's ``-D b`` / ``-D x1`` streams write hundreds of thousands of small stories; those
between two whole snapshots are now kept together in one record, a *pack*
(``docs/record-format.md``).  Each such story keeps its own ``record`` row (its hash is
still the sha256 of its text, which snapshots and events name), with no bytes of its own:
``pack`` names the pack's record and ``pack_offset`` where the story's text begins in the
pack's text (its length is ``text_size``).  Every row written before is a record of its own.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("record", sa.Column("pack", sa.String(64)))
    op.add_column("record", sa.Column("pack_offset", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("record", "pack_offset")
    op.drop_column("record", "pack")
