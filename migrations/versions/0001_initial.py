"""The event log, the content-addressed records and the projections.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Table definitions are frozen here on purpose: this migration must build the
same schema forever, whatever the live models later become.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("event", "record")


def upgrade() -> None:
    position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "event",
        sa.Column("position", position, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.UniqueConstraint("run_id", "version", name="uq_event_run_version"),
    )
    op.create_table(
        "record",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("codec", sa.String(40), nullable=False),
        sa.Column("text_size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("n_snapshots", sa.Integer, nullable=False),
        sa.Column("n_particles", sa.Integer),
        sa.Column("t_first", sa.Float),
        sa.Column("t_last", sa.Float),
        sa.Column("text_bytes", sa.BigInteger, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False),
        sa.Column("starlab_version", sa.String(40)),
        sa.Column("source", sa.Text),
        sa.Column("source_sha256", sa.String(64)),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "command",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("program", sa.String(80), nullable=False),
        sa.Column("argv", sa.Text, nullable=False),
        sa.Column("starlab_version", sa.String(40)),
    )
    op.create_table(
        "parameter",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("flag", sa.String(80), primary_key=True),
        sa.Column("program", sa.String(80), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("num_value", sa.Float),
    )
    op.create_table(
        "snapshot",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("time", sa.Float),
        sa.Column("n_particles", sa.Integer),
        sa.Column("record_hash", sa.String(64), sa.ForeignKey("record.hash"), nullable=False),
        sa.Column("text_size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tag",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    """The database itself refuses to change or remove events and records."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION snapstore_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'snapstore: % is append-only', TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION snapstore_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION snapstore_append_only()")
        return
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'snapstore: {table} is append-only'); END")


def downgrade() -> None:
    for name in ("tag", "snapshot", "parameter", "command", "run", "record", "event"):
        op.drop_table(name)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION snapstore_append_only()")
