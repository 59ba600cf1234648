"""On SQLite, the projections keyed by several columns are their primary key's b-tree alone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

SQLite keeps a table whose primary key is not one integer as two b-trees: its rows by rowid,
and the primary key's index pointing at them.  ``command``, ``parameter``, ``snapshot``,
``story_pack``, ``tag`` and ``input`` are found by their primary key (or, for ``parameter``
and ``snapshot``, by an index of their own), never by rowid, so SQLite now keeps each WITHOUT
ROWID, as ``observable_value`` since 0009: its rows in its primary key's order, in one b-tree.
Each of these tables' primary key is no longer held twice, and a new store has six b-trees
fewer (its file keeps the pages the copies freed, for its first rows).  PostgreSQL's tables
are unchanged.  The ``observable`` view names ``snapshot``, and SQLite refuses to rename a
table into a place a view names while the table is missing, so the view is dropped while the
tables are copied, then made again as it was.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("command", "parameter", "snapshot", "story_pack", "tag", "input")

# 0011's view, which SQLite keeps (a frozen copy: a migration never reads the live schema)
VIEW = """
CREATE VIEW observable AS
SELECT r.id AS run_id, v.seq AS seq, k.key AS key, v.idx AS idx, s.time AS time, v.value AS value
FROM observable_value v
JOIN observable_key k ON k.id = v.key_id
JOIN run r ON r.number = v.run
LEFT JOIN snapshot s ON s.run_id = r.id AND s.seq = v.seq
WHERE v.key_id IN (SELECT id FROM observable_key)
UNION ALL
SELECT r.id AS run_id, s.seq AS seq, k.key AS key, c.idx AS idx, s.time AS time, c.value AS value
FROM observable_constant c
JOIN observable_key k ON k.id = c.key_id
JOIN run r ON r.number = c.run
JOIN snapshot s ON s.run_id = r.id AND s.kind = 'snapshot' AND s.seq >= c.first_seq
WHERE c.key_id IN (SELECT id FROM observable_key)
"""


def _rebuild(with_rowid: bool) -> None:
    """Copy each table into one made with or without rowid (its columns, keys, indexes and
    rows unchanged); SQLite only, where the choice exists."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP VIEW observable")
    for name in TABLES:
        with op.batch_alter_table(name, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
            pass
    op.execute(VIEW)


def upgrade() -> None:
    _rebuild(False)


def downgrade() -> None:
    _rebuild(True)

