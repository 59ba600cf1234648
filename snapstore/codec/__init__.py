"""The snapshot codec: story text <-> one self-contained, compressed, columnar record."""

from snapstore.codec.layout import Layout
from snapstore.codec.particles import (
    particles,
    particles_from_layout,
    root_values,
    root_values_from_layout,
)
from snapstore.codec.record import (
    CODEC_NAME,
    FORMAT_VERSION,
    checked_bytes,
    checked_text,
    decode,
    decode_text,
    encode,
    encode_text,
    encode_text_with_layout,
    layout,
)
from snapstore.codec.render import bytes_from_layout, text_from_layout
from snapstore.codec.stars import PARTICLE_DTYPE

__all__ = [
    "CODEC_NAME",
    "FORMAT_VERSION",
    "PARTICLE_DTYPE",
    "Layout",
    "bytes_from_layout",
    "checked_bytes",
    "checked_text",
    "decode",
    "decode_text",
    "encode",
    "encode_text",
    "encode_text_with_layout",
    "layout",
    "particles",
    "particles_from_layout",
    "root_values",
    "root_values_from_layout",
    "text_from_layout",
]
