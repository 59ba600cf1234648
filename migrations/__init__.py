"""Alembic migrations for snapstore stores; installed as ``snapstore.migrations``."""
