"""A PostgreSQL role that may only read the store, for ``snapstore sql``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A role that may write cannot be made read-only from inside its own session: a
superuser's SELECT can call ``set_config('role', ...)`` and take every right back.  So
``snapstore sql`` logs in as ``snapstore_reader``, which this migration creates (LOGIN,
no password: an administrator gives it one, or trust/peer authentication admits it) and
grants SELECT on the store's tables, today's and those later migrations create.  Roles
belong to the whole server, so stores in one server share it; it reads nothing else.  A
migrating role that may not create roles skips the creation (the grants then follow once
an administrator has made the role).  SQLite needs none of this: its read path opens the
file read-only.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

READER = "snapstore_reader"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}')
               AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
                BEGIN
                    CREATE ROLE {READER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another store's migration made it a moment ago
                END;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO {READER}', current_schema());
                EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {READER}', current_schema());
                EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {READER}',
                               current_schema());
            END IF;
        END $$
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
                EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {READER}',
                               current_schema());
                EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM {READER}', current_schema());
            END IF;
        END $$
    """)
