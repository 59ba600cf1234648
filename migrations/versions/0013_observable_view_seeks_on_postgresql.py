"""On PostgreSQL, the ``observable`` view seeks one run's values by (key, run).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

0010 made the view name its key ids (``key_id IN (SELECT id FROM observable_key)``) so
that SQLite seeks (key, run) once per key for one run's values.  PostgreSQL plans that IN
as a semi-join and scans both value tables instead: 36 ms for one run's values at 1,000
runs, growing with the store, which made verify and every per-run read slower per run as
the store grew (0.022 s a run at 200 runs, 0.054 s at 2,000).  Written ``= ANY (ARRAY(SELECT
id FROM observable_key))`` it seeks them (1.2 ms).  SQLite keeps 0011's view; the columns
and rows are the same on both.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# 0011's view (a frozen copy: a migration never reads the live schema)
PREVIOUS = """
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
EVERY_KEY = "IN (SELECT id FROM observable_key)"
SEEKING = PREVIOUS.replace(EVERY_KEY, "= ANY (ARRAY(SELECT id FROM observable_key))")


def _replace(view: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP VIEW observable")
        op.execute(view)


def upgrade() -> None:
    _replace(SEEKING)


def downgrade() -> None:
    _replace(PREVIOUS)
