"""Packed stories: the partial stories of a -D b / -D x1 stream kept together, one row a pack.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

kira's ``-D b`` / ``-D x1`` streams write hundreds of thousands of small stories; those
committed together between two whole snapshots are kept in one record, a *pack*
(``docs/record-format.md``), appended by one ``pack_appended`` event.  ``story_pack`` is
its projection: one row per pack, naming its record, its first story's number, and each
story's size, time and N.  A store at 0007 holds no pack, so the table starts empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "story_pack",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("first_seq", sa.Integer, primary_key=True),
        sa.Column("stories", sa.Integer, nullable=False),
        sa.Column("record_hash", sa.String(64), sa.ForeignKey("record.hash"), nullable=False),
        sa.Column("text_size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("sizes", sa.Text, nullable=False),
        sa.Column("times", sa.Text, nullable=False),
        sa.Column("n_particles", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("story_pack")
