"""Compressed pack lists: each ``story_pack`` row's sizes, times and N as zstd of their JSON.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

A pack's row repeated its ``pack_appended`` event's lists as JSON text, 5 bytes a story
for the sizes alone: 14% of the store of a kira ``-D x1`` stream.  The row now keeps each
list's JSON compressed (under a byte a story); the event keeps the plain JSON.  The
upgrade compresses every row's lists as ``snapstore.store.pack_rows`` does (this file
imports no snapstore code, so that it stays what it was when the store was upgraded);
the downgrade gives them back as text.
"""

import json

import sqlalchemy as sa
import zstandard
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_LISTS = ("sizes", "times", "n_particles")
_PACKS = sa.table("story_pack", sa.column("run_id"), sa.column("first_seq"),
                  *(sa.column(name, sa.LargeBinary) for name in _LISTS))


def _retype(to: type, using: str) -> None:
    """The three columns as ``to``: SQLite copies the table (its values unchanged),
    PostgreSQL converts them in place with ``using`` (``{0}``: the column)."""
    if op.get_bind().dialect.name == "postgresql":
        for name in _LISTS:
            op.alter_column("story_pack", name, type_=to, existing_nullable=False, postgresql_using=using.format(name))
        return
    with op.batch_alter_table("story_pack") as batch:
        for name in _LISTS:
            batch.alter_column(name, type_=to, existing_nullable=False)


def _rewrite(change) -> None:
    """Each row's three lists through ``change`` (bytes in, bytes or text out), a run's
    rows at a time: a store of many kira -D runs holds more lists than memory should."""
    connection = op.get_bind()
    for run_id in connection.execute(sa.select(_PACKS.c.run_id).distinct()).scalars().all():
        for row in connection.execute(sa.select(_PACKS).where(_PACKS.c.run_id == run_id)).all():
            values = {name: change(bytes(getattr(row, name))) for name in _LISTS}
            connection.execute(_PACKS.update().where(_PACKS.c.run_id == run_id, _PACKS.c.first_seq == row.first_seq)
                               .values(**values))


def upgrade() -> None:
    _retype(sa.LargeBinary, "convert_to({0}, 'UTF8')")
    compressor = zstandard.ZstdCompressor(level=19)
    _rewrite(lambda text: compressor.compress(json.dumps(json.loads(text)).encode()))


def downgrade() -> None:
    decompressor = zstandard.ZstdDecompressor()
    _rewrite(lambda data: decompressor.decompress(data))  # the JSON text, still as bytes
    _retype(sa.Text, "convert_from({0}, 'UTF8')")
    if op.get_bind().dialect.name == "sqlite":  # bytes stay blobs in a TEXT column: make them text
        op.execute(f"UPDATE story_pack SET {', '.join(f'{name} = CAST({name} AS TEXT)' for name in _LISTS)}")
