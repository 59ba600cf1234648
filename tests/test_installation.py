"""The tests exercise the installed package, as a user gets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    from snapstore import kernel

    if UNDER_CI and not os.environ.get("SNAPSTORE_PURE"):
        assert kernel.COMPILED is not None, kernel.description()
    assert kernel.description().startswith("codec: ")


def _origin() -> str:
    from snapstore import kernel

    return f"{Path(snapstore.__file__).resolve()} | {kernel.description()}"


def test_the_kernel_in_use_is_the_installed_one() -> None:
    """Run by ``test_pytest_and_python_m_pytest_test_the_same_code`` in both ways, printing what it imported."""
    if os.environ.get("SNAPSTORE_SHOW_ORIGIN"):
        print(f"\nORIGIN {_origin()}")
    from snapstore import kernel

    if UNDER_CI and not os.environ.get("SNAPSTORE_PURE"):
        assert kernel.description() == "codec: compiled kernel"


@pytest.mark.skipif(bool(os.environ.get("SNAPSTORE_SHOW_ORIGIN")), reason="runs inside its own check")
def test_pytest_and_python_m_pytest_test_the_same_code() -> None:
    """From the checkout, ``pytest`` and ``python -m pytest`` import the snapstore this run
    imports, with the same kernel (the compiled one, wherever a compiler was at install)."""
    test = "tests/test_installation.py::test_the_kernel_in_use_is_the_installed_one"
    origins = []
    for start in ([str(Path(sys.executable).with_name("pytest"))], [sys.executable, "-m", "pytest"]):
        done = subprocess.run([*start, "-q", "-s", "-p", "no:cacheprovider", "-n", "0", test], cwd=REPO,
                              env={**os.environ, "SNAPSTORE_SHOW_ORIGIN": "1"}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        origins.append(next(line[len("ORIGIN "):] for line in done.stdout.splitlines() if line.startswith("ORIGIN ")))
    assert origins == [_origin(), _origin()]
