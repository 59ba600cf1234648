"""The bytes around a record's documents: magic, version, checksums, zstd frames.

Format 1 is one frame; format 2 puts a small hot frame (the star rows) before the
full one, each with its own CRC-32, so the hot frame is read and checked alone.
Every read checks the CRC of what it decompresses and zstd's content checksum.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

import msgpack
import zstandard

from snapstore.codec.dictionary import dictionary
from snapstore.errors import CorruptRecordError

MAGIC = b"SNPS"
FORMAT_VERSION = 2  # what this code writes; it reads every version in KNOWN_VERSIONS
KNOWN_VERSIONS = (1, 2)
_V1 = struct.Struct("<4sBI")     # magic, version, CRC-32 of the frame
_V2 = struct.Struct("<4sBIII")   # magic, version, hot frame length, CRC-32 of each frame
ZSTD_LEVEL = 15


@lru_cache(maxsize=4)
def _compressor(level: int, with_dictionary: bool) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=level, dict_data=dictionary() if with_dictionary else None,
                                    write_checksum=True, write_content_size=True)


@lru_cache(maxsize=2)
def _decompressor(with_dictionary: bool) -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=dictionary() if with_dictionary else None)


def frame(hot: dict, full: dict, level: int = ZSTD_LEVEL) -> bytes:
    """A format-2 record of the hot and the full document."""
    hot_frame = _compressor(level, False).compress(msgpack.packb(hot, use_bin_type=True))
    full_frame = _compressor(level, True).compress(msgpack.packb(full, use_bin_type=True))
    return (_V2.pack(MAGIC, 2, len(hot_frame), zlib.crc32(hot_frame), zlib.crc32(full_frame))
            + hot_frame + full_frame)


def version(record: bytes) -> int:
    """The format version of a record whose magic bytes are right."""
    if len(record) < _V1.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a snapstore record")
    if record[:4] != MAGIC:
        raise CorruptRecordError("not a snapstore record (bad magic bytes)")
    found = record[4]
    if found not in KNOWN_VERSIONS:
        raise CorruptRecordError(f"record format version {found} is not known to this snapstore "
                                 f"(knows {', '.join(map(str, KNOWN_VERSIONS))})")
    return found


def _v2_bounds(record: bytes) -> tuple[int, int, int]:
    """Where format 2's hot frame ends, and the two CRCs."""
    if len(record) < _V2.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-2 record")
    _, _, hot_length, hot_crc, full_crc = _V2.unpack_from(record)
    end = _V2.size + hot_length
    if end > len(record):
        raise CorruptRecordError("record is cut short: its hot section runs past its end")
    return end, hot_crc, full_crc


def _unpacked(data: memoryview, crc: int, with_dictionary: bool) -> dict:
    if zlib.crc32(data) != crc:
        raise CorruptRecordError("record checksum mismatch: the stored bytes are corrupt")
    try:
        # tuples, not lists: cheaper to build
        return msgpack.unpackb(_decompressor(with_dictionary).decompress(data), raw=False, use_list=False)
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
        raise CorruptRecordError(f"record cannot be decoded: {exc}") from None


def hot_document(record: bytes) -> dict | None:
    """The checked hot document of a format-2 record; None for format 1, which has none."""
    if version(record) == 1:
        return None
    end, hot_crc, _ = _v2_bounds(record)
    return _unpacked(memoryview(record)[_V2.size:end], hot_crc, False)


def documents(record: bytes) -> tuple[dict, dict | None]:
    """The checked full document of a record, and its hot document (None for format 1)."""
    view = memoryview(record)
    if version(record) == 1:
        return _unpacked(view[_V1.size:], _V1.unpack_from(record)[2], True), None
    end, hot_crc, full_crc = _v2_bounds(record)
    return _unpacked(view[end:], full_crc, True), _unpacked(view[_V2.size:end], hot_crc, False)
