"""The layers hold: an import contract over the package, and what start-up loads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import snapstore
from helpers import REPO, SAMPLE

LINT = Path(sys.executable).with_name("lint-imports")


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    """import-linter with the repo's contracts, over the snapstore package in ``package_parent``
    (it puts its working directory first on the import path)."""
    return subprocess.run([str(LINT), "--no-cache", "--config", str(REPO / "pyproject.toml")], capture_output=True,
                          text=True, cwd=package_parent)


def test_the_import_contract_holds() -> None:
    done = _lint(Path(snapstore.__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "planted"), [
    ("codec/record.py", "import snapstore.store.schema"),   # the codec reaching into the store
    ("store/ingest.py", "import snapstore.reading"),        # the store reaching up to the read side
    ("story/model.py", "import sqlalchemy"),                # the format knowing a database
    ("codec/record.py", "import snapstore.physics"),        # the byte format doing physics
    ("physics/observables.py", "import sqlalchemy"),        # the physics knowing a database
    ("cli.py", "import snapstore.store.catalog"),           # the CLI around the facade and operations
    ("serializers/storages.py", "import snapstore.store.records"),  # a storage around the facade
])
def test_the_contract_catches_a_planted_violation(tmp_path, module: str, planted: str) -> None:
    copy = tmp_path / "snapstore"
    shutil.copytree(Path(snapstore.__file__).resolve().parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{planted}\n")
    done = _lint(tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout.upper(), done.stdout[-3000:]


def _loaded_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True, cwd="/")
    return set(done.stdout.split())


def test_the_codec_and_story_format_load_no_database() -> None:
    loaded = _loaded_after("import snapstore.codec, snapstore.story, snapstore.physics.observables, "
                           "snapstore.provenance, snapstore.encoding")
    assert not {"sqlalchemy", "alembic"} & loaded


def test_help_loads_neither_numpy_nor_a_database() -> None:
    loaded = _loaded_after("import sys; sys.argv = ['snapstore', '--help']\n"
                           "from snapstore.cli import main\ntry: main()\nexcept SystemExit: pass")
    assert not {"numpy", "sqlalchemy", "alembic"} & loaded


def test_opening_a_store_at_head_does_not_load_alembic(store_url) -> None:
    snapstore.open(store_url).close()  # created at head: this one needed alembic
    loaded = _loaded_after(f"import snapstore\nsnapstore.open({store_url!r}).runs()")
    assert "sqlalchemy" in loaded and "alembic" not in loaded


def test_declared_schema_revision_is_the_migrations_head(tmp_path) -> None:
    from snapstore.store.backend import make_engine, resolve_url
    from snapstore.store.migrate import head_revision
    from snapstore.store.schema import SCHEMA_REVISION

    engine = make_engine(resolve_url(str(tmp_path / "s.db")))
    assert head_revision(engine) == SCHEMA_REVISION
    engine.dispose()


def test_the_codec_s_names_are_what_they_say_after_every_submodule_loaded() -> None:
    """``snapstore.codec`` loads its names on first use; a submodule of the same name as one of
    them would take its place once imported, so none may share one."""
    import importlib
    import pkgutil
    import types

    from snapstore import codec

    for module in pkgutil.iter_modules(codec.__path__):
        importlib.import_module(f"snapstore.codec.{module.name}")
    shadowed = [name for name in codec.__all__ if isinstance(getattr(codec, name), types.ModuleType)]
    assert shadowed == [] and len(codec.__all__) > 10


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("verbs") / "s.db"
    with snapstore.open(str(path)) as store:
        store.ingest(SAMPLE, name="sample")
    return path


# What each reading verb may load on a SQLite store: the sqlite3 module, typer to parse, and
# numpy with the codec where a record is decoded; never SQLAlchemy, alembic, pydantic or rich.
LEAN_VERBS = [
    (["runs"], set()),
    (["runs", "--format", "json"], set()),
    (["show", "sample"], {"numpy"}),
    (["export", "sample", "-s", "1"], {"numpy", "snapstore.codec.record"}),
    (["sql", "select name from run"], set()),
]


@pytest.mark.parametrize(("words", "allowed"), LEAN_VERBS, ids=[" ".join(words) for words, _ in LEAN_VERBS])
def test_a_reading_verb_on_a_sqlite_store_needs_only_sqlite3(sample_store, words, allowed) -> None:
    argv = ["snapstore", *words, "--db", str(sample_store)]
    loaded = _loaded_after(f"import sys; sys.argv = {argv!r}\n"
                           "from snapstore.cli import main\ntry: main()\nexcept SystemExit: pass")
    heavy = {"sqlalchemy", "alembic", "pydantic", "rich", "numpy", "snapstore.codec.record"}
    assert (heavy - allowed) & loaded == set()


def test_a_filter_is_compiled_with_sqlalchemy_and_decodes_nothing(sample_store) -> None:
    argv = ["snapstore", "runs", "--where", "makeking.n = 100", "--db", str(sample_store)]
    loaded = _loaded_after(f"import sys; sys.argv = {argv!r}\n"
                           "from snapstore.cli import main\ntry: main()\nexcept SystemExit: pass")
    assert "sqlalchemy" in loaded and not {"numpy", "snapstore.codec.record", "alembic"} & loaded
