"""Starlab's story format: the tree, its line grammar and a strict streaming reader."""

from snapstore.story.model import Entry, Story
from snapstore.story.reader import (
    CORRUPT_COMPRESSION,
    RootText,
    iter_root_texts,
    open_source,
    parse_story,
    read_stories,
    root_sizes,
    source_location,
    source_name,
)

__all__ = ["CORRUPT_COMPRESSION", "Entry", "RootText", "Story", "iter_root_texts", "open_source", "parse_story",
           "read_stories", "root_sizes", "source_location", "source_name"]
