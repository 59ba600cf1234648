"""How kira ended: the time it was asked to reach and the time it said it ended at.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

``run.t_end`` and ``run.ended_at`` are the projection of the last ``diagnostics_attached``
event of a run, whose version 2 carries what kira's stderr says of its end (``t = 0,
t_end = 10`` and ``End of run at time 10``); a run is finished when it reached its t_end.
The upgrade fills both from each run's last such event, as a replay would: version 1
events, all that a store written at 0013 holds, did not read the text, so their runs start
with both empty (unknown); a run whose stderr is attached again (its folder ingested
again) is read anew.  A store taken down to 0013 and back up gets its values again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both backends, as 0007: a batch copy of ``run`` would drop the table
# the other projections refer to.
def upgrade() -> None:
    op.add_column("run", sa.Column("t_end", sa.Float))
    op.add_column("run", sa.Column("ended_at", sa.Float))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for column in ("t_end", "ended_at"):
        value = (f"CAST(CAST(e.payload AS json) ->> '{column}' AS double precision)" if postgresql
                 else f"json_extract(e.payload, '$.{column}')")
        op.execute(f"UPDATE run SET {column} = (SELECT {value} FROM event e WHERE e.run_id = run.id "
                   "AND e.type = 'diagnostics_attached' ORDER BY e.position DESC LIMIT 1)")


def downgrade() -> None:
    op.drop_column("run", "ended_at")
    op.drop_column("run", "t_end")
