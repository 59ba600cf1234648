"""Schema revisions: create new stores at head, refuse old or newer ones.

Upgrading is explicit (``snapstore db upgrade``), as in MLflow: opening a store
never changes the schema of an existing database behind the user's back.
Opening a store at head costs one query; alembic itself (about 0.4 s to import)
is loaded only to create, upgrade or downgrade a store, or to name revisions.
"""

from __future__ import annotations

import os
import time
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from snapstore.errors import SchemaError, StoreAccessError, first_line
from snapstore.store.backend import classify, masked, write_transaction
from snapstore.store.schema import SCHEMA_REVISION

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory


def alembic_config(engine: Engine) -> Config:
    """An alembic config pointing at the migrations shipped in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("snapstore.migrations")))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def _scripts(engine: Engine) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine))


def head_revision(engine: Engine) -> str:
    """The newest revision among the shipped migrations (the tables in schema.py are at it)."""
    return _scripts(engine).get_current_head()  # type: ignore[return-value]


def history(engine: Engine) -> list[tuple[str | None, str, str]]:
    """``(down revision, revision, first line of its description)`` of every migration, newest first."""
    return [(script.down_revision, script.revision, (script.doc or "").splitlines()[0])  # type: ignore[misc]
            for script in _scripts(engine).walk_revisions()]


def data_lost_by_downgrade(engine: Engine, revision: str) -> str | None:
    """What a downgrade to ``revision`` would delete for good, if anything: below 0001 the
    tables themselves go, the event log and the records with them (other downgrades drop
    projections, which are rebuilt from the log, or refuse on their own)."""
    from alembic.script.revision import ResolutionError

    current = current_revision(engine)
    if current is None:
        return None
    try:
        passed = {script.revision for script in _scripts(engine).iterate_revisions(current, revision)}
    except ResolutionError as exc:  # no such revision: said as such, not as a loss of data
        raise SchemaError(f"{masked(engine.url)}: cannot downgrade to {revision!r}: {first_line(exc)}") from None
    except Exception:  # a revision alembic resolves only while running: assume the worst
        passed = {"0001"}
    if "0001" not in passed:
        return None
    with engine.connect() as connection:
        events = connection.execute(text("select count(*) from event")).scalar_one()
        records = connection.execute(text("select count(*) from record")).scalar_one()
    return f"{events:,} events and {records:,} records" if events or records else None


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision, or None for a database snapstore never set up."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("select version_num from alembic_version")).scalar()


def run_alembic(engine: Engine, operation: str, revision: str = "head") -> None:
    """``upgrade`` or ``downgrade`` to ``revision``, inside one write transaction."""
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(engine)
    try:
        with write_transaction(engine) as connection:
            config.attributes["connection"] = connection
            getattr(command, operation)(config, revision)
    except CommandError as exc:
        raise SchemaError(f"{masked(engine.url)}: cannot {operation} to {revision!r}: {first_line(exc)}") from None


def ensure_current(engine: Engine, create: bool = True) -> None:
    """Create an empty database at head; refuse one at another revision.

    SQLite answers some lock waits at once, not after its busy timeout (a read snapshot
    gone stale, a WAL being recovered: ``classify`` says "retry"); processes that create
    one store together can meet them.  The check is then made again, a few times."""
    for attempt in range(_ATTEMPTS):
        try:
            _ensure_current(engine, create)
            return
        except DBAPIError as exc:
            if classify(exc) != "retry" or attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


_ATTEMPTS = 4


def _ensure_current(engine: Engine, create: bool) -> None:
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        _create(engine, create)
        return
    known = {script[1] for script in history(engine)}
    if revision in known:
        raise SchemaError(
            f"{masked(engine.url)} is at schema revision {revision}, this snapstore needs {SCHEMA_REVISION}: "
            f"run `snapstore db upgrade --db '{masked(engine.url)}'` (back it up first)"
        )
    raise SchemaError(
        f"{masked(engine.url)} is at schema revision {revision}, newer than this snapstore knows "
        f"(head {SCHEMA_REVISION}): upgrade snapstore; the store was not touched"
    )


def require_existing(url: URL) -> None:
    """Refuse, before any connection could create it, a SQLite store whose file is missing."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:") \
            and not os.path.exists(database):
        raise StoreAccessError(f"no snapstore store at {masked(url)}: only ingest and pipe create one "
                               "(and db upgrade, on purpose)")


def _create(engine: Engine, create: bool) -> None:
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
    if tables - {"alembic_version"}:
        raise SchemaError(f"{masked(engine.url)} holds tables but is not a snapstore store")
    if not create:
        raise SchemaError(f"{masked(engine.url)} is not a snapstore store: only ingest and pipe create one "
                          "(and db upgrade, on purpose); nothing was written")
    try:
        run_alembic(engine, "upgrade")
    except (SchemaError, DBAPIError):
        # Another process may have created the same new store a moment earlier.
        if current_revision(engine) != SCHEMA_REVISION:
            raise
