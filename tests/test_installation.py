"""The tests exercise the installed package, as a user gets it."""

from __future__ import annotations

from pathlib import Path

import snapstore
from helpers import REPO, UNDER_CI


def test_imported_snapstore_is_the_installed_one_under_ci() -> None:
    location = Path(snapstore.__file__).resolve()
    if UNDER_CI:  # CI installs with plain `pip install .`, so the source tree must not shadow it
        assert REPO / "snapstore" not in location.parents, location
    from importlib.resources import files

    assert files("snapstore.migrations").joinpath("versions", "0001_initial.py").is_file()
    assert files("snapstore.codec").joinpath("starlab-v1.zdict").is_file()


def test_the_kernel_is_built_under_ci() -> None:
    """CI machines have gcc and the Python headers: pip install must have built the kernel."""
    import os

    from snapstore import kernel

    if UNDER_CI and not os.environ.get("SNAPSTORE_PURE"):
        assert kernel.COMPILED is not None, kernel.description()
    assert kernel.description().startswith("codec: ")
