"""Schema revisions: create new stores at head, refuse old or newer ones.

Upgrading is explicit (``snapstore db upgrade``), as in MLflow: opening a store
never changes the schema of an existing database behind the user's back.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from snapstore.errors import SchemaError
from snapstore.store.backend import masked, write_transaction


def alembic_config(engine: Engine) -> Config:
    """An alembic config pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(files("snapstore.migrations")))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision(engine: Engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()  # type: ignore[return-value]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def run_alembic(engine: Engine, operation: str, revision: str = "head") -> None:
    """``upgrade`` or ``downgrade`` to ``revision``, inside one write transaction."""
    config = alembic_config(engine)
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        getattr(command, operation)(config, revision)


def ensure_current(engine: Engine, create: bool = True) -> None:
    """Create an empty database at head; refuse one at another revision."""
    head = head_revision(engine)
    revision = current_revision(engine)
    if revision == head:
        return
    if revision is None:
        tables = set(inspect(engine).get_table_names())
        if tables - {"alembic_version"}:
            raise SchemaError(f"{masked(engine.url)} holds tables but is not a snapstore store")
        if not create:
            raise SchemaError(f"{masked(engine.url)} is not a snapstore store yet")
        try:
            run_alembic(engine, "upgrade")
        except Exception:
            # Another process may have created the same new store a moment earlier.
            if current_revision(engine) != head:
                raise
        return
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()}
    if revision in known:
        raise SchemaError(
            f"{masked(engine.url)} is at schema revision {revision}, this snapstore needs {head}: "
            f"run `snapstore db upgrade --db '{masked(engine.url)}'` (back it up first)"
        )
    raise SchemaError(
        f"{masked(engine.url)} is at schema revision {revision}, newer than this snapstore knows "
        f"(head {head}): upgrade snapstore; the store was not touched"
    )
