"""The bytes around a record's documents: magic, version, key, checksums, zstd frames.

Format 1 is one frame; format 2 puts a small hot frame (the star rows) before the
full one, each with its own CRC-32, so the hot frame is read and checked alone.
Format 3 is format 2 with the record's key in its header: the sha256 of the text it
holds, covered by the hot frame's CRC, so a read that asks for one text can tell a
misplaced record (a payload file swapped for another) from the one it wanted.
Format 4 has format 3's bytes; its documents store format codes against a prediction
(``precision.py``).
Every read checks the CRC of what it decompresses and zstd's content checksum, and
refuses a frame that claims more content than any frame of its size can hold.
"""

from __future__ import annotations

import struct
import threading
import zlib

import msgpack
import zstandard

from snapstore.codec.dictionary import dictionary
from snapstore.errors import CorruptRecordError

MAGIC = b"SNPS"
FORMAT_VERSION = 4  # what this code writes; it reads every version in KNOWN_VERSIONS
KNOWN_VERSIONS = (1, 2, 3, 4)
_V1 = struct.Struct("<4sBI")       # magic, version, CRC-32 of the frame
_V2 = struct.Struct("<4sBIII")     # magic, version, hot frame length, CRC-32 of each frame
_V3 = struct.Struct("<4sBI32sII")  # magic, version, hot frame length, key, CRC-32 of key + hot frame, of full frame
ZSTD_LEVEL = 15
# The root kind of a pack record's text (pack.py): not a word, so that no Starlab story has it.
PACK_KIND = "snapstore-pack"
# A zstd block of at most 128 KiB takes at least 4 bytes: no frame expands by more than this.
_MAX_EXPANSION = 1 << 15
_SMALL = 1 << 20


class _Contexts(threading.local):
    """This thread's zstd contexts.  A context serves one call at a time (python-zstandard:
    "assume instances are not thread safe"): shared by threads that read at once (the web
    interface's, a user's thread pool), it fails good records or returns wrong bytes."""

    def __init__(self) -> None:
        self.compressors: dict[tuple[int, bool], zstandard.ZstdCompressor] = {}
        self.decompressors: dict[bool, zstandard.ZstdDecompressor] = {}


_contexts = _Contexts()


# The hot frame at ZSTD_LEVEL: it is mostly the random low bytes of doubles, in which level 15's
# deeper search finds nothing more; these give its size (corpus: 2,261,592 bytes, 2,262,019 at
# level 15) in 58% of its time (0.058 s, 0.099 s).
_HOT_PARAMETERS = {"window_log": 21, "chain_log": 20, "hash_log": 20, "search_log": 2, "min_match": 4,
                   "target_length": 48, "strategy": zstandard.STRATEGY_BTOPT}


def _compressor(level: int, with_dictionary: bool) -> zstandard.ZstdCompressor:
    found = _contexts.compressors.get((level, with_dictionary))
    if found is None:
        if level == ZSTD_LEVEL and not with_dictionary:
            found = zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters(
                **_HOT_PARAMETERS, write_checksum=1, write_content_size=1))
        else:
            found = zstandard.ZstdCompressor(level=level, dict_data=dictionary() if with_dictionary else None,
                                             write_checksum=True, write_content_size=True)
        _contexts.compressors[level, with_dictionary] = found
    return found


def _decompressor(with_dictionary: bool) -> zstandard.ZstdDecompressor:
    found = _contexts.decompressors.get(with_dictionary)
    if found is None:
        found = _contexts.decompressors[with_dictionary] = zstandard.ZstdDecompressor(
            dict_data=dictionary() if with_dictionary else None)
    return found


def _crc(data: bytes | memoryview, covered: bytes = b"") -> int:
    """CRC-32 of ``covered`` followed by ``data``: format 3's hot CRC covers the key too."""
    return zlib.crc32(data, zlib.crc32(covered)) if covered else zlib.crc32(data)


def frame(hot: dict, full: dict, key: bytes, level: int = ZSTD_LEVEL) -> bytes:
    """A record of the hot and the full document (format ``FORMAT_VERSION``, in format 3's
    framing), under ``key`` (the raw sha256 of the text it holds)."""
    if len(key) != 32:
        raise ValueError("a record's key is a 32-byte sha256")
    hot_frame = _compressor(level, False).compress(msgpack.packb(hot, use_bin_type=True))
    full_frame = _compressor(level, True).compress(msgpack.packb(full, use_bin_type=True))
    header = _V3.pack(MAGIC, FORMAT_VERSION, len(hot_frame), key, _crc(hot_frame, key), _crc(full_frame))
    return header + hot_frame + full_frame


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


def key(record: bytes) -> bytes | None:
    """The key in a record's header (format 3 on), None for the formats before it."""
    if version(record) < 3:
        return None
    if len(record) < _V3.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-3 record")
    return _V3.unpack_from(record)[3]


def require_key(record: bytes, text_sha256: str) -> bytes:
    """``record`` when it is the one stored under ``text_sha256`` (hex).  A record of an
    older format names no key and is checked by its text; bytes that are not a snapstore
    record at all (a run's attached log) are left to their own reader."""
    if record[:4] != MAGIC:
        return record
    found = key(record)
    if found is None or found.hex() == text_sha256:
        return record
    end, header_key, hot_crc, _ = _bounds(record, _V3)
    if _crc(memoryview(record)[_V3.size:end], header_key) != hot_crc:
        raise CorruptRecordError("record checksum mismatch: the stored bytes are corrupt")
    raise CorruptRecordError(f"record stored under {text_sha256[:16]} is the record of another text "
                             f"({found.hex()[:16]}): misplaced or forged")


def _bounds(record: bytes, layout: struct.Struct) -> tuple[int, bytes, int, int]:
    """Where the hot frame ends, the key (b"" before format 3), and the two CRCs."""
    if len(record) < layout.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-{record[4]} record")
    fields = layout.unpack_from(record)
    hot_length, hot_crc, full_crc = fields[2], fields[-2], fields[-1]
    end = layout.size + hot_length
    if end > len(record):
        raise CorruptRecordError("record is cut short: its hot section runs past its end")
    return end, fields[3] if layout is _V3 else b"", hot_crc, full_crc


def _unpacked(data: memoryview, crc: int, with_dictionary: bool, covered: bytes = b"") -> dict:
    if _crc(data, covered) != crc:
        raise CorruptRecordError("record checksum mismatch: the stored bytes are corrupt")
    try:
        claimed = zstandard.frame_content_size(data)
        if claimed < 0 or claimed > _SMALL + _MAX_EXPANSION * len(data):
            raise CorruptRecordError("record cannot be decoded: a frame claims more content than it can hold")
        # tuples, not lists: cheaper to build
        return msgpack.unpackb(_decompressor(with_dictionary).decompress(data), raw=False, use_list=False)
    except CorruptRecordError:
        raise
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException, RecursionError) as exc:
        raise CorruptRecordError(f"record cannot be decoded: {exc}") from None


_HEADERS = {2: _V2, 3: _V3, 4: _V3}


def hot_document(record: bytes) -> dict | None:
    """The checked hot document of a format-2 or -3 record; None for format 1, which has none."""
    layout = _HEADERS.get(version(record))
    if layout is None:
        return None
    end, header_key, hot_crc, _ = _bounds(record, layout)
    return _unpacked(memoryview(record)[layout.size:end], hot_crc, False, header_key)


def documents(record: bytes) -> tuple[dict, dict | None]:
    """The checked full document of a record, and its hot document (None for format 1)."""
    view = memoryview(record)
    found = version(record)
    layout = _HEADERS.get(found)
    if layout is None:
        return _same_version(_unpacked(view[_V1.size:], _V1.unpack_from(record)[2], True), found), None
    end, header_key, hot_crc, full_crc = _bounds(record, layout)
    return (_same_version(_unpacked(view[end:], full_crc, True), found),
            _unpacked(view[layout.size:end], hot_crc, False, header_key))


def _same_version(full: dict, found: int) -> dict:
    """The full document, when it names the format its header does.  No checksum covers the
    header's version byte, and formats 3 and 4 share their framing: a damaged byte would read
    a format-4 column's numbers by format 3's rules, whose text the hash check refuses but
    whose numbers nothing else would."""
    if not isinstance(full, dict) or full.get("v") != found:
        shown = full.get("v") if isinstance(full, dict) else None
        raise CorruptRecordError(f"record's header says format {found}, its document {shown!r}")
    return full
