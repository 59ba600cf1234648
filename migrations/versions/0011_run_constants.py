"""A run's constant observables kept once, not once per snapshot.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Most of a kira snapshot's root values do not change over a run (kira's parameters, the
initial conditions' figures): at N = 100, 80 of 146 values a snapshot, and the
``observable_value`` rows outweighed the records of a small run.  ``observable_constant``
holds each such component once per run, as the value at every whole snapshot from
``first_seq`` on; the view ``observable`` shows it at each of them, so queries read the same.

The upgrade moves a component into it when the run's values of it are all equal and are
at every whole snapshot from its first on (what ingest decides snapshot by snapshot).
Zeros stay per snapshot: SQL cannot tell 0.0 from -0.0, and the view must give each
snapshot's own value back; ``snapstore rebuild`` makes the same choice in Python, where it can.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# 0010's view (a frozen copy: a migration never reads the live schema), and this one
PREVIOUS = """
CREATE VIEW observable AS
SELECT r.id AS run_id, v.seq AS seq, k.key AS key, v.idx AS idx, s.time AS time, v.value AS value
FROM observable_value v
JOIN observable_key k ON k.id = v.key_id
JOIN run r ON r.number = v.run
LEFT JOIN snapshot s ON s.run_id = r.id AND s.seq = v.seq
WHERE v.key_id IN (SELECT id FROM observable_key)
"""
VIEW = PREVIOUS + """UNION ALL
SELECT r.id AS run_id, s.seq AS seq, k.key AS key, c.idx AS idx, s.time AS time, c.value AS value
FROM observable_constant c
JOIN observable_key k ON k.id = c.key_id
JOIN run r ON r.number = c.run
JOIN snapshot s ON s.run_id = r.id AND s.kind = 'snapshot' AND s.seq >= c.first_seq
WHERE c.key_id IN (SELECT id FROM observable_key)
"""

CONSTANTS = """
INSERT INTO observable_constant (key_id, run, idx, first_seq, value)
SELECT v.key_id, v.run, v.idx, min(v.seq), min(v.value)
FROM observable_value v JOIN run r ON r.number = v.run
GROUP BY v.key_id, v.run, v.idx, r.id
HAVING min(v.value) = max(v.value) AND min(v.value) <> 0
   AND count(*) = (SELECT count(*) FROM snapshot s
                   WHERE s.run_id = r.id AND s.kind = 'snapshot' AND s.seq >= min(v.seq))
"""


def upgrade() -> None:
    op.create_table(
        "observable_constant",
        sa.Column("key_id", sa.Integer, sa.ForeignKey("observable_key.id"), primary_key=True),
        sa.Column("run", sa.Integer, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute(CONSTANTS)
    op.execute("DELETE FROM observable_value WHERE EXISTS (SELECT 1 FROM observable_constant c WHERE "
               "c.key_id = observable_value.key_id AND c.run = observable_value.run AND c.idx = observable_value.idx)")
    op.execute("DROP VIEW observable")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW observable")
    op.execute("INSERT INTO observable_value (key_id, run, seq, idx, value) "
               "SELECT c.key_id, c.run, s.seq, c.idx, c.value FROM observable_constant c "
               "JOIN run r ON r.number = c.run "
               "JOIN snapshot s ON s.run_id = r.id AND s.kind = 'snapshot' AND s.seq >= c.first_seq")
    op.drop_table("observable_constant")
    op.execute(PREVIOUS)
