"""The tables the code declares.  Migrations build the same schema from frozen
copies of these definitions; a test checks the two never drift apart.

``event`` and ``record`` are the source of truth and append-only (database
triggers refuse UPDATE and DELETE).  ``run``, ``command``, ``parameter``,
``snapshot``, ``story_pack``, ``tag`` and ``input`` are projections: derived from the events, rebuilt at will;
``observable_value`` (read through the view ``observable``) is derived from the records the
events name (see ``observations``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# The migration these definitions correspond to; a test checks it is the head of migrations/.
SCHEMA_REVISION = "0018"

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Position = BigInteger().with_variant(Integer(), "sqlite")

# Revision 0016: on SQLite the tables keyed by several columns (``sqlite_with_rowid=False``)
# are their primary key's b-tree alone, not a rowid table beside a second copy of their key.
# Revision 0017 changes no table: records of format 4 may be stored (an older snapstore reads 1 to 3);
# nor does 0018: records of format 5 may be stored (an older snapstore reads 1 to 4).

event = Table(
    "event", metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(40), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("run_id", "version", name="uq_event_run_version"),
)

record = Table(
    "record", metadata,
    Column("hash", String(64), primary_key=True),
    Column("codec", String(40), nullable=False),
    Column("text_size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),  # empty when the payload is at ``location``
    Column("location", Text),  # revision 0003: "file:///..." or "s3://bucket/key", else NULL
)

run = Table(
    "run", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("n_snapshots", Integer, nullable=False),
    Column("n_particles", Integer),
    Column("t_first", Float),
    Column("t_last", Float),
    Column("text_bytes", BigInteger, nullable=False),
    Column("stored_bytes", BigInteger, nullable=False),
    Column("starlab_version", String(40)),
    Column("source", Text),
    Column("source_sha256", String(64)),
    Column("error", Text),
    Column("retired_at", String(32)),  # revision 0007: set while the run is retired
    Column("retired_reason", Text),
    # revision 0009: 1, 2, ... in the order the runs were started (their run_started events),
    # a short key for the observable values
    Column("number", Integer),
    # revision 0014: what kira's stderr (the last attached) says of its end: the time it was
    # asked to reach and the time it said it ended at; NULL where no stderr says
    Column("t_end", Float),
    Column("ended_at", Float),
)

command = Table(
    "command", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("program", String(80), nullable=False),
    Column("argv", Text, nullable=False),
    Column("starlab_version", String(40)),
    # revision 0004; NULL for pipelines recorded before it
    Column("origin", String(16)),  # "log", "commands" (the commands file only) or "both"
    Column("first_seq", Integer),  # the first snapshot whose Log holds this command
    Column("conflict", Text),  # where the commands file and the Log disagree (the Log is kept)
    sqlite_with_rowid=False,
)

parameter = Table(
    "parameter", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("flag", String(80), primary_key=True),
    Column("program", String(80), nullable=False),
    Column("value", Text, nullable=False),
    Column("num_value", Float),
    sqlite_with_rowid=False,
)

snapshot = Table(
    "snapshot", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("time", Float),
    Column("n_particles", Integer),
    Column("record_hash", String(64), ForeignKey("record.hash"), nullable=False),
    Column("text_size", BigInteger, nullable=False),
    # revision 0004: "snapshot" (a whole system) or "partial" (a kira -D b / -D x1 story)
    Column("kind", String(16), nullable=False, server_default="snapshot"),
    sqlite_with_rowid=False,
)

# Revision 0008: the partial stories of kira's -D b / -D x1 streams kept together in one
# record (codec/pack.py), one row per pack: its ``stories`` are first_seq, first_seq + 1, ...
# ``sizes``, ``times`` and ``n_particles`` are JSON lists, one item per story (the last two
# empty when no story has one), each compressed with zstd since revision 0015 (pack_rows.py).
story_pack = Table(
    "story_pack", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("first_seq", Integer, primary_key=True),
    Column("stories", Integer, nullable=False),
    Column("record_hash", String(64), ForeignKey("record.hash"), nullable=False),
    Column("text_size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("sizes", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
    Column("n_particles", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

tag = Table(
    "tag", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

# Revision 0004: each input of a run ("stream", "initial", "commands"): where it was
# read from (an absolute path, or the command line of ``snapstore pipe``) and its sha256.
input_file = Table(
    "input", metadata,
    Column("run_id", String(32), ForeignKey("run.id"), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("location", Text, nullable=False),
    Column("sha256", String(64)),
    Column("size", BigInteger),
    sqlite_with_rowid=False,
)

# Revision 0005: every numeric root entry of each whole snapshot (vectors one row per
# component ``idx``), and the derived counts and energy error; see ``observations``.
# Revision 0009 keeps them compact: each key once (``observable_key``), and the values keyed
# by (key, run number, seq, component), a primary key that serves the reads by key (filters)
# and by run and key (time series), with no second index.  SQLite keeps it WITHOUT ROWID: the
# primary key is the table, not a second copy of it.
observable_key = Table(
    "observable_key", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False, unique=True),
)

observable_value = Table(
    "observable_value", metadata,
    Column("key_id", Integer, ForeignKey("observable_key.id"), primary_key=True),
    Column("run", Integer, primary_key=True),  # the run's ``number``
    Column("seq", Integer, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("value", Float, nullable=False),
    sqlite_with_rowid=False,
)

# Revision 0011: a run's constants, kept once instead of once per snapshot: the value of a
# component at every whole snapshot of the run from ``first_seq`` on (see ``constants``).
# Most of a kira snapshot's root values are (its parameters, the initial conditions'
# figures): at N = 100 they were 80 of 146 values a snapshot.
observable_constant = Table(
    "observable_constant", metadata,
    Column("key_id", Integer, ForeignKey("observable_key.id"), primary_key=True),
    Column("run", Integer, primary_key=True),  # the run's ``number``
    Column("idx", Integer, primary_key=True),
    Column("first_seq", Integer, nullable=False),
    Column("value", Float, nullable=False),
    sqlite_with_rowid=False,
)

# What users query (the README's SQL) and the code reads: a view over the three, with each
# value's key and its snapshot's time, as the table of revisions 0005-0008 had them (each
# constant once per whole snapshot it holds at).  The view is made by migration 0009 (0010
# names its key ids, so that one run's values are read through the primary key, and 0013
# names them so that PostgreSQL does too; 0011 adds the constants); it is declared here
# apart from ``metadata``, which holds tables.
views = MetaData()
observable = Table(
    "observable", views,
    Column("run_id", String(32)),
    Column("seq", Integer),
    Column("key", String(80)),
    Column("idx", Integer),
    Column("time", Float),
    Column("value", Float),
)

# Added by the second migration: filters look parameters up by program and flag.
Index("ix_parameter_lookup", parameter.c.program, parameter.c.flag, parameter.c.num_value, parameter.c.run_id)
Index("ix_snapshot_record", snapshot.c.record_hash)
Index("uq_run_number", run.c.number, unique=True)

PROJECTIONS = (input_file, tag, snapshot, story_pack, parameter, command, run)  # children first, for deletes


def run_of(table: Table) -> Column:
    """The column of a projection that names its rows' run."""
    return table.c.id if table is run else table.c.run_id
