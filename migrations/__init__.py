"""Alembic migrations for snapstore stores.

Kept at the top of the repository, installed as ``snapstore.migrations`` (the
package-dir mapping in pyproject.toml); snapstore/store/migrate.py finds them
with ``importlib.resources.files("snapstore.migrations")``.
"""
