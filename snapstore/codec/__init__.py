"""The snapshot codec: story text <-> one self-contained, compressed, columnar record."""

from snapstore.codec.particles import PARTICLE_DTYPE, particles, particles_from_layout, root_values
from snapstore.codec.record import (
    CODEC_NAME,
    FORMAT_VERSION,
    Layout,
    decode,
    decode_text,
    encode,
    encode_lines,
    layout,
)

__all__ = [
    "CODEC_NAME", "FORMAT_VERSION", "Layout", "PARTICLE_DTYPE", "decode", "decode_text", "encode",
    "encode_lines", "layout", "particles", "particles_from_layout", "root_values",
]
