"""The static zstd dictionary that record format v1 is compressed with.

It holds Starlab's recurring structure (key names, spacing, Log lines), so a
small snapshot does not pay for that structure in every record.  It is part of
the format: its hash is pinned, and a changed file is refused rather than used.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.resources import files

import zstandard

from snapstore.errors import CorruptRecordError

DICTIONARY_FILE = "starlab-v1.zdict"
DICTIONARY_SHA256 = "d28d01ff39c38ce7a4d4800fbf598271a0dbcfd89dd189120581b11a114e52b3"


@lru_cache(maxsize=1)
def dictionary() -> zstandard.ZstdCompressionDict:
    """The format-v1 dictionary, checked against its pinned hash."""
    data = files("snapstore.codec").joinpath(DICTIONARY_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != DICTIONARY_SHA256:
        raise CorruptRecordError(f"{DICTIONARY_FILE} in this installation is not the dictionary of record format v1")
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
