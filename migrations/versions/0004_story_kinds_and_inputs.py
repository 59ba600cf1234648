"""Stories that are not whole-system snapshots, each command's provenance, and
every input file of a run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

* ``snapshot.kind``: ``snapshot`` for a whole system, ``partial`` for the stories
  of kira's ``-D b`` and ``-D x1`` streams (kept byte-exact, not counted for N,
  times or arrays).  Every story stored before this revision was a snapshot.
* ``command.origin`` (``log``, ``commands`` or ``both``), ``command.first_seq``
  (the first snapshot whose Log holds it) and ``command.conflict`` (where the
  commands file and the Log disagree); NULL for pipelines recorded earlier.
* ``input``: path (or command line) and sha256 of the stream, the initial
  conditions and the commands file of each run.

Columns are added in place on both backends, as in 0003, then filled from the
event log, the way the projections of this revision read it (a frozen copy, as
0001 freezes its tables): a store upgraded from 0003 verifies clean.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("snapshot", sa.Column("kind", sa.String(16), nullable=False, server_default="snapshot"))
    op.add_column("command", sa.Column("origin", sa.String(16)))
    op.add_column("command", sa.Column("first_seq", sa.Integer))
    op.add_column("command", sa.Column("conflict", sa.Text))
    op.create_table(
        "input",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.BigInteger),
    )
    _backfill(op.get_bind())


def _backfill(bind) -> None:
    """The inputs each ingest recorded, and each pipeline step's origin, first snapshot
    and conflict, from the events (a store that was at 0004 before keeps them there)."""
    inputs: dict[tuple[str, str], dict] = {}
    pipelines: dict[str, dict] = {}
    events = bind.execute(sa.text(
        "SELECT run_id, type, payload FROM event "
        "WHERE type IN ('ingest_started', 'ingest_finished', 'pipeline_recorded') ORDER BY position"))
    for run_id, kind, payload in events:
        data = json.loads(payload)
        if kind == "ingest_started":
            for item in data.get("inputs", []):
                inputs[(run_id, item["role"])] = item
        elif kind == "ingest_finished" and data["complete"]:
            inputs[(run_id, "stream")] = {"location": data["source"], "sha256": data.get("sha256"),
                                          "size": data.get("size")}
        elif kind == "pipeline_recorded":
            pipelines[run_id] = data
    for (run_id, role), item in inputs.items():
        bind.execute(sa.text("INSERT INTO input (run_id, role, location, sha256, size) "
                             "VALUES (:run_id, :role, :location, :sha256, :size)"),
                     {"run_id": run_id, "role": role, "location": item["location"], "sha256": item.get("sha256"),
                      "size": item.get("size")})
    for run_id, data in pipelines.items():
        for position, item in enumerate(data["commands"]):
            bind.execute(sa.text("UPDATE command SET origin = :origin, first_seq = :first_seq, conflict = :conflict "
                                 "WHERE run_id = :run_id AND position = :position"),
                         {"origin": item.get("origin", data.get("origin")), "first_seq": item.get("first_seq"),
                          "conflict": item.get("conflict"), "run_id": run_id, "position": position})


def downgrade() -> None:
    # 0003 would count partial stories as snapshots: refuse rather than mislead.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM snapshot WHERE kind <> 'snapshot'")).scalar():
        raise RuntimeError("stores holding partial stories (kira -D b / -D x1) cannot be downgraded to 0003")
    op.drop_table("input")
    for name in ("conflict", "first_seq", "origin"):
        op.drop_column("command", name)
    op.drop_column("snapshot", "kind")
