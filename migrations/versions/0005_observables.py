"""Observables: every numeric root entry of each whole snapshot, as a table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

``observable`` (run_id, seq, key, idx, time, value): the numbers kira writes into
each snapshot's root (energies, Lagrangian radii, the Log's running totals, the
density centre ...), one row per value and vector component, with the derived
``energy_error``, ``n_stars``, ``n_systems``, ``n_multiples`` and ``n_bound``.

The table is created as 0005 declares it (a frozen copy) and back-filled by
measuring the records every stored snapshot names.  What the measuring reads is
the codec's business, so it is the codec's current code that runs: a record reads
the same under every snapstore, and these rows are what ``snapstore rebuild``
would write.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    observable = op.create_table(
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
    _backfill(op.get_bind(), observable)


def _backfill(bind, observable: sa.Table) -> None:
    from snapstore.store.observations import measured  # measuring is the codec's, as the note says

    snapshots = bind.execute(sa.text(
        "SELECT run_id, seq, time, record_hash FROM snapshot WHERE kind = 'snapshot' ORDER BY run_id, seq")).all()
    for rows in measured(bind, snapshots):
        if rows:  # a bad record gets none: verify names it
            bind.execute(observable.insert(), rows)


def downgrade() -> None:
    op.drop_index("ix_observable_key", "observable")
    op.drop_table("observable")
