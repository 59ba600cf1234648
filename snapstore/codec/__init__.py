"""The snapshot codec: story text <-> one compressed, columnar record.

Names are imported on first use (PEP 562): a reader that needs only ``codec.framing``
(the store checking a record's key) does not load numpy and the whole codec."""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapstore._lazy import loader

if TYPE_CHECKING:
    from snapstore.codec.arrays import (
        particle_fields,
        particles,
        particles_from_layout,
        particles_with_fields,
        root_values,
        root_values_from_layout,
        star_rows,
    )
    from snapstore.codec.pack import (
        Pack,
        Packed,
        Stored,
        pack_text,
        packable,
        shares,
        stored_story,
        story_bytes,
        verify_pack,
    )
    from snapstore.codec.record import (
        CODEC_NAME,
        FORMAT_VERSION,
        checked_bytes,
        checked_text,
        codec_name,
        decode,
        decode_text,
        encode,
        encode_text,
        encode_text_with_layout,
        layout,
        layout_of_text,
    )
    from snapstore.codec.render import bytes_from_layout, text_from_layout
    from snapstore.codec.stars import PARTICLE_DTYPE
    from snapstore.codec.structure import Layout

_LAZY = {
    "Layout": "snapstore.codec.structure",
    "particles": "snapstore.codec.arrays",
    "particle_fields": "snapstore.codec.arrays",
    "particles_with_fields": "snapstore.codec.arrays",
    "particles_from_layout": "snapstore.codec.arrays",
    "root_values": "snapstore.codec.arrays",
    "root_values_from_layout": "snapstore.codec.arrays",
    "star_rows": "snapstore.codec.arrays",
    **dict.fromkeys(("Pack", "Packed", "Stored", "pack_text", "packable", "shares", "story_bytes", "stored_story",
                     "verify_pack"), "snapstore.codec.pack"),
    "CODEC_NAME": "snapstore.codec.record",
    "FORMAT_VERSION": "snapstore.codec.record",
    "checked_bytes": "snapstore.codec.record",
    "checked_text": "snapstore.codec.record",
    "codec_name": "snapstore.codec.record",
    "decode": "snapstore.codec.record",
    "decode_text": "snapstore.codec.record",
    "encode": "snapstore.codec.record",
    "encode_text": "snapstore.codec.record",
    "encode_text_with_layout": "snapstore.codec.record",
    "layout": "snapstore.codec.record",
    "layout_of_text": "snapstore.codec.record",
    "bytes_from_layout": "snapstore.codec.render",
    "text_from_layout": "snapstore.codec.render",
    "PARTICLE_DTYPE": "snapstore.codec.stars",
}


__getattr__ = loader("snapstore.codec", _LAZY, globals())


__all__ = [
    "CODEC_NAME",
    "FORMAT_VERSION",
    "PARTICLE_DTYPE",
    "Layout",
    "Pack",
    "Packed",
    "Stored",
    "bytes_from_layout",
    "checked_bytes",
    "checked_text",
    "codec_name",
    "decode",
    "decode_text",
    "encode",
    "encode_text",
    "encode_text_with_layout",
    "layout",
    "layout_of_text",
    "pack_text",
    "packable",
    "particle_fields",
    "particles",
    "particles_from_layout",
    "particles_with_fields",
    "root_values",
    "root_values_from_layout",
    "shares",
    "star_rows",
    "stored_story",
    "story_bytes",
    "text_from_layout",
    "verify_pack",
]
