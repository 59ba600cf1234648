"""snapstore: an event-sourced, append-only archive for Starlab N-body snapshots.

Names are imported on first use (PEP 562), so ``import snapstore.codec`` or
``snapstore --help`` do not pay for SQLAlchemy and alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapstore._lazy import loader
from snapstore._version import __version__
from snapstore.errors import (
    BlobNotFoundError,
    CaptureError,
    CorruptRecordError,
    FilterError,
    InvalidArgumentError,
    LockTimeoutError,
    OutputError,
    QueryError,
    RunConflictError,
    RunNotFoundError,
    SchemaError,
    SnapstoreError,
    StarIdentityError,
    StoreAccessError,
    StoreError,
    StoreURLError,
    StoryFormatError,
)

if TYPE_CHECKING:
    from snapstore.facade import Store, open
    from snapstore.story import Entry, Story, parse_story, read_stories

_LAZY = {
    "Store": "snapstore.facade", "open": "snapstore.facade",
    "Entry": "snapstore.story", "Story": "snapstore.story", "parse_story": "snapstore.story",
    "read_stories": "snapstore.story",
}


_SUBPACKAGES = frozenset({"codec", "story", "store", "reading", "facade", "serializers", "operations", "physics"})
# snapstore.codec.encode(...) works after a plain `import snapstore`
__getattr__ = loader("snapstore", _LAZY, globals(), _SUBPACKAGES)


__all__ = [
    "BlobNotFoundError",
    "CaptureError",
    "CorruptRecordError",
    "Entry",
    "FilterError",
    "InvalidArgumentError",
    "LockTimeoutError",
    "OutputError",
    "QueryError",
    "RunConflictError",
    "RunNotFoundError",
    "SchemaError",
    "SnapstoreError",
    "StarIdentityError",
    "Store",
    "StoreAccessError",
    "StoreError",
    "StoreURLError",
    "Story",
    "StoryFormatError",
    "__version__",
    "open",
    "parse_story",
    "read_stories",
]
