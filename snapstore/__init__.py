"""snapstore: an event-sourced, append-only archive for Starlab N-body snapshots."""

from snapstore.errors import FilterError, IntegrityError, SchemaError, SnapstoreError, StoreError, StoryFormatError
from snapstore.story import Entry, Story, parse_story, read_stories
from snapstore.store.store import Store, open

__version__ = "0.1.0"

__all__ = [
    "Entry", "FilterError", "IntegrityError", "SchemaError", "SnapstoreError", "Story", "StoreError",
    "Store", "StoryFormatError", "open", "parse_story", "read_stories", "__version__",
]
