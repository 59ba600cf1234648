"""Compact observables: each key once, values keyed by key and run, read through a view.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Revision 0005's ``observable`` table repeated each key's text and each snapshot's time in
every row and kept a second index by key: on the corpus, 2.2 MB beside 4.7 MB of records.
Now ``observable_key`` holds each key once and ``observable_value`` (key id, run number, seq,
component, value) is keyed by (key, run, seq, component), which serves the reads by key and
by run and key without a second index.  ``run.number`` is the run's short key: 1, 2, ... in
the order of the runs' ``run_started`` events, as a replay of the log numbers them.
``observable`` becomes a view with the columns the table had, so that queries written for it
(the README's) read the same.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

VIEW = """
CREATE VIEW observable AS
SELECT r.id AS run_id, v.seq AS seq, k.key AS key, v.idx AS idx, s.time AS time, v.value AS value
FROM observable_value v
JOIN observable_key k ON k.id = v.key_id
JOIN run r ON r.number = v.run
LEFT JOIN snapshot s ON s.run_id = r.id AND s.seq = v.seq
"""


def upgrade() -> None:
    op.add_column("run", sa.Column("number", sa.Integer))
    op.execute("UPDATE run SET number = (SELECT count(*) FROM event e WHERE e.type = 'run_started' AND e.position <= "
               "(SELECT min(position) FROM event f WHERE f.run_id = run.id AND f.type = 'run_started'))")
    op.create_index("uq_run_number", "run", ["number"], unique=True)
    op.create_table(
        "observable_key",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(80), nullable=False, unique=True),
    )
    op.create_table(
        "observable_value",
        sa.Column("key_id", sa.Integer, sa.ForeignKey("observable_key.id"), primary_key=True),
        sa.Column("run", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO observable_key (key) SELECT DISTINCT key FROM observable ORDER BY key")
    op.execute("INSERT INTO observable_value (key_id, run, seq, idx, value) SELECT k.id, r.number, o.seq, o.idx, "
               "o.value FROM observable o JOIN observable_key k ON k.key = o.key JOIN run r ON r.id = o.run_id")
    op.drop_index("ix_observable_key", "observable")
    op.drop_table("observable")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW observable")
    op.create_table(
        "observable",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("time", sa.Float),
        sa.Column("value", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_observable_key", "observable", ["key", "run_id"])
    op.execute("INSERT INTO observable (run_id, seq, key, idx, time, value) "
               "SELECT r.id, v.seq, k.key, v.idx, s.time, v.value FROM observable_value v "
               "JOIN observable_key k ON k.id = v.key_id JOIN run r ON r.number = v.run "
               "LEFT JOIN snapshot s ON s.run_id = r.id AND s.seq = v.seq")
    op.drop_table("observable_value")
    op.drop_table("observable_key")
    op.drop_index("uq_run_number", "run")
    op.drop_column("run", "number")
