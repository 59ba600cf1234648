"""The bytes around a record's documents: magic, version, key, checksums, zstd frames.

Format 1 is one frame; format 2 puts a small hot frame (the star rows) before the
full one, each with its own CRC-32, so the hot frame is read and checked alone.
Format 3 is format 2 with the record's key in its header: the sha256 of the text it
holds, covered by the hot frame's CRC, so a read that asks for one text can tell a
misplaced record (a payload file swapped for another) from the one it wanted.
Format 4 has format 3's bytes; its documents store format codes against a prediction
(``precision.py``).  Format 5 is format 4 compressed against another record, its *base*
(a run's first snapshot): its header names the base by key and by the sha256 of its bytes,
and its frames are compressed with the base's decompressed frames as dictionaries, so
that what a run's snapshots repeat (the stars' masses, ids, structure) is stored once.
A base is a self-contained record (format 3 or 4); a store hands a format-5 record back
as a ``BasedRecord``, which carries its base.
Every read checks the CRC of what it decompresses and zstd's content checksum, and
refuses a frame that claims more content than any frame of its size can hold.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict

import msgpack
import zstandard

from snapstore.codec.dictionary import dictionary
from snapstore.errors import CorruptRecordError

MAGIC = b"SNPS"
FORMAT_VERSION = 4  # what this code writes for a record on its own; it reads every version in KNOWN_VERSIONS
BASED_VERSION = 5  # what it writes for a record compressed against a base
KNOWN_VERSIONS = (1, 2, 3, 4, 5)
BASE_VERSIONS = (3, 4)  # the formats a base may have: self-contained, with a key
_V1 = struct.Struct("<4sBI")       # magic, version, CRC-32 of the frame
_V2 = struct.Struct("<4sBIII")     # magic, version, hot frame length, CRC-32 of each frame
_V3 = struct.Struct("<4sBI32sII")  # magic, version, hot frame length, key, CRC-32 of key + hot frame, of full frame
# magic, version, hot frame length, key, the base's key, the sha256 of the base's bytes, CRC-32 of
# the three hashes + hot frame, of full frame
_V5 = struct.Struct("<4sBI32s32s32sII")
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
        # for the bases met last, by the sha256 of their bytes: (hot, full) compressors by level, decompressors
        self.based_compressors: dict[tuple[bytes, int], tuple[zstandard.ZstdCompressor, ...]] = {}
        self.based_decompressors: dict[bytes, tuple[zstandard.ZstdDecompressor, ...]] = {}


_contexts = _Contexts()


# The hot frame at ZSTD_LEVEL: it is mostly the random low bytes of doubles, in which level 15's
# deeper search finds nothing more; these give its size (corpus: 2,261,592 bytes, 2,262,019 at
# level 15) in 58% of its time (0.058 s, 0.099 s).
_HOT_PARAMETERS = {"window_log": 21, "chain_log": 20, "hash_log": 20, "search_log": 2, "min_match": 4,
                   "target_length": 48, "strategy": zstandard.STRATEGY_BTOPT}
# Against a base, at ZSTD_LEVEL: most of what a frame can lose is found in the base whatever the
# search (over the corpus's 99 later snapshots), so a cheap one does: the hot frames take 1,767,122
# bytes in 0.016 s (1,745,262 in 0.103 s with the parameters above; 1,951,626 without the base) and
# the full frames 1,583,758 bytes in 0.052 s at level 9 (1,548,921 in 0.311 s at level 15; 1,650,386
# without the base).
_BASED_HOT_PARAMETERS = {**_HOT_PARAMETERS, "chain_log": 16, "hash_log": 18, "strategy": zstandard.STRATEGY_LAZY2}
_BASED_FULL_LEVEL = 9


def _compressor(level: int, with_dictionary: bool) -> zstandard.ZstdCompressor:
    found = _contexts.compressors.get((level, with_dictionary))
    if found is None:
        found = _contexts.compressors[level, with_dictionary] = _new_compressor(
            level, dictionary() if with_dictionary else None, hot=not with_dictionary)
    return found


def _new_compressor(level: int, dict_data: zstandard.ZstdCompressionDict | None, hot: bool,
                    based: bool = False) -> zstandard.ZstdCompressor:
    """A frame's compressor at ``level``; at ZSTD_LEVEL, with the parameters above for the hot
    frame and for frames against a base."""
    if level == ZSTD_LEVEL and hot:
        parameters = _BASED_HOT_PARAMETERS if based else _HOT_PARAMETERS
        return zstandard.ZstdCompressor(dict_data=dict_data, compression_params=zstandard.ZstdCompressionParameters(
            **parameters, write_checksum=1, write_content_size=1))
    level = _BASED_FULL_LEVEL if level == ZSTD_LEVEL and based else level
    return zstandard.ZstdCompressor(level=level, dict_data=dict_data, write_checksum=True, write_content_size=True)


def _decompressor(with_dictionary: bool) -> zstandard.ZstdDecompressor:
    found = _contexts.decompressors.get(with_dictionary)
    if found is None:
        found = _contexts.decompressors[with_dictionary] = zstandard.ZstdDecompressor(
            dict_data=dictionary() if with_dictionary else None)
    return found


def _crc(data: bytes | memoryview, covered: bytes = b"") -> int:
    """CRC-32 of ``covered`` followed by ``data``: format 3's hot CRC covers the key too."""
    return zlib.crc32(data, zlib.crc32(covered)) if covered else zlib.crc32(data)


class BasedRecord(bytes):
    """A format-5 record's bytes, with the bytes of its base: what a store hands back for
    such a record, taken by every decoder where it takes a record."""

    base: bytes

    def __new__(cls, record: bytes, base: bytes) -> BasedRecord:
        made = super().__new__(cls, record)
        made.base = base
        return made

    def __reduce__(self):
        return BasedRecord, (bytes(self), self.base)


class _Base:
    """A base record's key and decompressed frames: the content of the dictionaries of the
    records compressed against it (each thread makes its own dictionary objects of them)."""

    def __init__(self, record: bytes) -> None:
        self.record = record  # the very bytes object, which a reader of one run hands on with every record
        if version(record) not in BASE_VERSIONS:
            raise CorruptRecordError(f"a base is a self-contained record of format "
                                     f"{' or '.join(map(str, BASE_VERSIONS))}, not one of format {record[4]}")
        end, self.key, hot_crc, full_crc = _bounds(record, _V3)
        view = memoryview(record)
        self.hot = _decompressed(view[_V3.size:end], hot_crc, _decompressor(False), self.key)
        self.full = _decompressed(view[end:], full_crc, _decompressor(True))

    def dictionaries(self) -> tuple[zstandard.ZstdCompressionDict, zstandard.ZstdCompressionDict]:
        return tuple(zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
                     for content in (self.hot, self.full))  # type: ignore[return-value]


_BASES_KEPT = 4  # a reader of several runs at once (the web's comparisons) keeps each one's base
_bases: OrderedDict[bytes, _Base] = OrderedDict()
_bases_lock = threading.Lock()


def _base(record: bytes) -> tuple[bytes, _Base]:
    """The sha256 of a base record's bytes and its dictionaries, checked and decompressed
    once however many records are read against it; hashed once too, when the reader hands
    on one bytes object (immutable) with each of them, as ``store.records.run_records`` does."""
    with _bases_lock:
        for digest, found in _bases.items():
            if found.record is record and type(record) is bytes:
                _bases.move_to_end(digest)
                return digest, found
    digest = hashlib.sha256(record).digest()
    with _bases_lock:
        known = _bases.get(digest)
        if known is not None:
            known.record = record  # the same bytes, as this reader hands them on
            _bases.move_to_end(digest)
            return digest, known
    found = _Base(record)
    with _bases_lock:
        _bases[digest] = found
        while len(_bases) > _BASES_KEPT:
            _bases.popitem(last=False)
    return digest, found


def _kept(contexts: dict, key, make):
    """``contexts[key]``, made if missing; a thread keeps those of its last two bases."""
    found = contexts.get(key)
    if found is None:
        if len(contexts) >= 2:
            contexts.pop(next(iter(contexts)))
        found = contexts[key] = make()
    return found


def frame(hot: dict, full: dict, key: bytes, level: int = ZSTD_LEVEL, base: bytes | None = None) -> bytes:
    """A record of the hot and the full document under ``key`` (the raw sha256 of the text it
    holds): format ``FORMAT_VERSION``, or ``BASED_VERSION`` compressed against the record
    ``base`` (whose documents then need not be repeated)."""
    if len(key) != 32:
        raise ValueError("a record's key is a 32-byte sha256")
    hot_raw, full_raw = msgpack.packb(hot, use_bin_type=True), msgpack.packb(full, use_bin_type=True)
    if base is None:
        hot_frame, full_frame = _compressor(level, False).compress(hot_raw), _compressor(level, True).compress(full_raw)
        return _V3.pack(MAGIC, FORMAT_VERSION, len(hot_frame), key, _crc(hot_frame, key), _crc(full_frame)) + \
            hot_frame + full_frame
    digest, found = _base(base)
    compress_hot, compress_full = _kept(_contexts.based_compressors, (digest, level), lambda: tuple(
        _new_compressor(level, dictionary, hot=hot, based=True)
        for dictionary, hot in zip(found.dictionaries(), (True, False))))
    hot_frame, full_frame = compress_hot.compress(hot_raw), compress_full.compress(full_raw)
    covered = key + found.key + digest
    return _V5.pack(MAGIC, BASED_VERSION, len(hot_frame), key, found.key, digest, _crc(hot_frame, covered),
                    _crc(full_frame)) + hot_frame + full_frame


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


def base_of(record: bytes) -> bytes | None:
    """The key of the record a format-5 record is compressed against (the sha256 of the
    base's text, under which a store files it); None for a record on its own, and for bytes
    that are not a snapstore record (a run's attached log), which need none."""
    if record[:4] != MAGIC or version(record) != BASED_VERSION:
        return None
    if len(record) < _V5.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-5 record")
    return _V5.unpack_from(record)[4]


def require_key(record: bytes, text_sha256: str) -> bytes:
    """``record`` when it is the one stored under ``text_sha256`` (hex).  A record of an
    older format names no key and is checked by its text; bytes that are not a snapstore
    record at all (a run's attached log) are left to their own reader."""
    if record[:4] != MAGIC:
        return record
    found = key(record)
    if found is None or found.hex() == text_sha256:
        return record
    layout = _HEADERS[record[4]]
    end, covered, hot_crc, _ = _bounds(record, layout)
    if _crc(memoryview(record)[layout.size:end], covered) != hot_crc:
        raise CorruptRecordError("record checksum mismatch: the stored bytes are corrupt")
    raise CorruptRecordError(f"record stored under {text_sha256[:16]} is the record of another text "
                             f"({found.hex()[:16]}): misplaced or forged")


def _bounds(record: bytes, layout: struct.Struct) -> tuple[int, bytes, int, int]:
    """Where the hot frame ends, what the hot frame's CRC covers before it (the header's
    hashes: none before format 3), and the two CRCs."""
    if len(record) < layout.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-{record[4]} record")
    fields = layout.unpack_from(record)
    hot_length, hot_crc, full_crc = fields[2], fields[-2], fields[-1]
    end = layout.size + hot_length
    if end > len(record):
        raise CorruptRecordError("record is cut short: its hot section runs past its end")
    return end, b"".join(fields[3:-2]), hot_crc, full_crc


def _decompressed(data: memoryview, crc: int, decompressor: zstandard.ZstdDecompressor, covered: bytes = b"") -> bytes:
    if _crc(data, covered) != crc:
        raise CorruptRecordError("record checksum mismatch: the stored bytes are corrupt")
    try:
        claimed = zstandard.frame_content_size(data)
        if claimed < 0 or claimed > _SMALL + _MAX_EXPANSION * len(data):
            raise CorruptRecordError("record cannot be decoded: a frame claims more content than it can hold")
        return decompressor.decompress(data)
    except CorruptRecordError:
        raise
    except (zstandard.ZstdError, ValueError) as exc:
        raise CorruptRecordError(f"record cannot be decoded: {exc}") from None


def _unpacked(data: memoryview, crc: int, decompressor: zstandard.ZstdDecompressor, covered: bytes = b"") -> dict:
    raw = _decompressed(data, crc, decompressor, covered)
    try:  # tuples, not lists: cheaper to build
        return msgpack.unpackb(raw, raw=False, use_list=False)
    except (ValueError, msgpack.UnpackException, RecursionError) as exc:
        raise CorruptRecordError(f"record cannot be decoded: {exc}") from None


_HEADERS = {2: _V2, 3: _V3, 4: _V3, 5: _V5}


def _decompressors(record: bytes, layout: struct.Struct) -> tuple[zstandard.ZstdDecompressor, ...]:
    """The hot and the full frame's decompressors: with the base's frames as dictionaries for
    a format-5 record."""
    if layout is not _V5:
        return _decompressor(False), _decompressor(True)
    digest, found = _checked_base(record)
    return _kept(_contexts.based_decompressors, digest, lambda: tuple(
        zstandard.ZstdDecompressor(dict_data=dictionary) for dictionary in found.dictionaries()))


def _checked_base(record: bytes) -> tuple[bytes, _Base]:
    """The base a format-5 record comes with, when it is the very record it was compressed
    against, and self-contained."""
    if len(record) < _V5.size:
        raise CorruptRecordError(f"record is {len(record)} bytes, too short to be a format-5 record")
    base_key, base_digest = _V5.unpack_from(record)[4:6]
    base = getattr(record, "base", None)
    if base is None:
        raise CorruptRecordError(f"record is compressed against record {base_key.hex()[:12]}, "
                                 "which was not read with it")
    try:
        digest, found = _base(base)
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"record is compressed against record {base_key.hex()[:12]}, which is unreadable: "
                                 f"{exc}") from None
    if digest != base_digest or found.key != base_key:
        raise CorruptRecordError(f"record is compressed against another version of record {base_key.hex()[:12]} "
                                 "than the one read with it")
    return digest, found


def check_base(record: BasedRecord) -> None:
    """CorruptRecordError unless a format-5 record comes with the very base it was
    compressed against (checked and decompressed: a reader of the record would take it)."""
    _checked_base(record)


def hot_document(record: bytes) -> dict | None:
    """The checked hot document of a record of format 2 on; None for format 1, which has none."""
    layout = _HEADERS.get(version(record))
    if layout is None:
        return None
    end, covered, hot_crc, _ = _bounds(record, layout)
    return _unpacked(memoryview(record)[layout.size:end], hot_crc, _decompressors(record, layout)[0], covered)


def documents(record: bytes) -> tuple[dict, dict | None]:
    """The checked full document of a record, and its hot document (None for format 1)."""
    view = memoryview(record)
    found = version(record)
    layout = _HEADERS.get(found)
    if layout is None:
        return _same_version(_unpacked(view[_V1.size:], _V1.unpack_from(record)[2], _decompressor(True)), found), None
    end, covered, hot_crc, full_crc = _bounds(record, layout)
    hot, full = _decompressors(record, layout)
    return (_same_version(_unpacked(view[end:], full_crc, full), found),
            _unpacked(view[layout.size:end], hot_crc, hot, covered))


def _same_version(full: dict, found: int) -> dict:
    """The full document, when it names the format its header does.  No checksum covers the
    header's version byte, and formats 3 and 4 share their framing: a damaged byte would read
    a format-4 column's numbers by format 3's rules, whose text the hash check refuses but
    whose numbers nothing else would."""
    if not isinstance(full, dict) or full.get("v") != found:
        shown = full.get("v") if isinstance(full, dict) else None
        raise CorruptRecordError(f"record's header says format {found}, its document {shown!r}")
    return full
