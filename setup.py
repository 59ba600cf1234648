"""Builds the codec's optional C kernel; everything else is in pyproject.toml.

Without a compiler the package still installs: the build of the kernel is
allowed to fail, and snapstore then runs its pure Python/numpy codec (slower),
as `snapstore --version` says.  SNAPSTORE_CFLAGS adds compiler flags (CI builds
a copy with -fsanitize=address,undefined).
"""

import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = sorted(str(path) for path in Path("snapstore/csrc").glob("*.c"))
FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"] + os.environ.get("SNAPSTORE_CFLAGS", "").split()


def _not_built(exc: Exception) -> None:
    print(f"WARNING: snapstore's C kernel was not built ({exc}); the pure Python codec will be used")


class OptionalBuildExt(build_ext):
    """A failed compile of the kernel is a warning, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all
            _not_built(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _not_built(exc)


setup(
    ext_modules=[Extension("snapstore._kernel", SOURCES, depends=["snapstore/csrc/kernel.h"],
                           include_dirs=["snapstore/csrc"], extra_compile_args=FLAGS,
                           extra_link_args=os.environ.get("SNAPSTORE_LDFLAGS", "").split())],
    cmdclass={"build_ext": OptionalBuildExt},
)
