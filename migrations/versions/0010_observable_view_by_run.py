"""The ``observable`` view reads one run's values through the primary key.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

``observable_value``'s primary key starts with the key id, so a query for every key of one
run (``WHERE run_id = ...``: a run's whole time series, ``verify`` run by run) found no
index prefix and scanned the whole table: 0.1 s at 2,000 small runs, and growing with
the store.  The view now names the key ids it reads (``key_id IN (SELECT id FROM
observable_key)``, every one), which lets the planner seek (key, run) once per key: 11 ms
at 2,000 runs, and the same at any size.  Its columns and rows are unchanged.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# 0009's view (a frozen copy: a migration never reads the live schema), and this one
PREVIOUS = """
CREATE VIEW observable AS
SELECT r.id AS run_id, v.seq AS seq, k.key AS key, v.idx AS idx, s.time AS time, v.value AS value
FROM observable_value v
JOIN observable_key k ON k.id = v.key_id
JOIN run r ON r.number = v.run
LEFT JOIN snapshot s ON s.run_id = r.id AND s.seq = v.seq
"""
VIEW = PREVIOUS + "WHERE v.key_id IN (SELECT id FROM observable_key)\n"


def upgrade() -> None:
    op.execute("DROP VIEW observable")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW observable")
    op.execute(PREVIOUS)
