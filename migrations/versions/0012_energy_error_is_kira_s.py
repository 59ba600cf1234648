"""``energy_error`` becomes kira's integration error; the raw change is ``energy_change``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Until now ``energy_error`` was (E - E0)/|E0|, which counts the energy escapers carry off
(kira removes them and books their energy in ``de_total``) as error: on the corpus's
seed500 it reached -0.335 at t = 45, where kira's own stderr reports an integration error
of 3e-3.  The old values are kept under the name ``energy_change``; ``energy_error`` is now
(E - E0 - (de_total - de_total0))/|E0|, E0 and de_total0 those of the run's first snapshot
kira wrote, computed here from the stored observables with the same operations, in the
same order, as ``observations.rows`` computes it, so that verify finds them equal.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The reference of each run: its first snapshot with an energy change (kira's first)
ERRORS = """
INSERT INTO observable_value (key_id, run, seq, idx, value)
SELECT (SELECT id FROM observable_key WHERE key = 'energy_error'), r.number, c.seq, 0,
       (e.value - e0.value - (coalesce(d.value, 0.0) - coalesce(d0.value, 0.0))) / abs(e0.value)
FROM observable c
JOIN run r ON r.id = c.run_id
JOIN (SELECT run_id, min(seq) AS seq FROM observable WHERE key = 'energy_change' GROUP BY run_id) f
  ON f.run_id = c.run_id
JOIN observable e ON e.run_id = c.run_id AND e.seq = c.seq AND e.key = 'total_energy' AND e.idx = 0
JOIN observable e0 ON e0.run_id = c.run_id AND e0.seq = f.seq AND e0.key = 'total_energy' AND e0.idx = 0
LEFT JOIN observable d ON d.run_id = c.run_id AND d.seq = c.seq AND d.key = 'de_total' AND d.idx = 0
LEFT JOIN observable d0 ON d0.run_id = c.run_id AND d0.seq = f.seq AND d0.key = 'de_total' AND d0.idx = 0
WHERE c.key = 'energy_change'
"""


def upgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT 1 FROM observable_key WHERE key = 'energy_change'")).first():
        return  # measured by this snapstore already (0005 back-fills an older store with the code of today)
    op.execute("UPDATE observable_key SET key = 'energy_change' WHERE key = 'energy_error'")
    op.execute("INSERT INTO observable_key (key) SELECT 'energy_error' "
               "WHERE EXISTS (SELECT 1 FROM observable_key WHERE key = 'energy_change')")
    op.execute(ERRORS)


def downgrade() -> None:
    for table in ("observable_value", "observable_constant"):
        op.execute(f"DELETE FROM {table} WHERE key_id IN (SELECT id FROM observable_key WHERE key = 'energy_error')")
    op.execute("DELETE FROM observable_key WHERE key = 'energy_error'")
    op.execute("UPDATE observable_key SET key = 'energy_error' WHERE key = 'energy_change'")
