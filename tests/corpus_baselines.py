"""gzip -6 and zstd -19 sizes of the frozen corpus's texts, the baselines the codec is measured against.

Computing them takes over a minute (zstd -19 of 20 MB), so they are pinned here
with the first 16 hex digits of each file's sha256; ``baseline_sizes`` recomputes
any file whose bytes differ from the pinned ones.  Made by compressing each file's
text with Python's gzip (level 6) and zstandard (level 19).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import zstandard

# path under the corpus: (sha256 of the .gz file, first 16 digits; gzip -6 bytes; zstd -19 bytes)
PINNED = {
    'binaries/initial.story.gz': ('2ecbafcf45ac3908', 21184, 17830),
    'binaries/kira.out.gz': ('f2f1ff1e893e253e', 779589, 559755),
    'grid/n100-w3-s1/initial.story.gz': ('626277929a154c17', 9031, 7526),
    'grid/n100-w3-s1/kira.out.gz': ('4af7d0674eec1228', 83631, 62721),
    'grid/n100-w3-s2/initial.story.gz': ('a6dd70de0a486109', 9031, 7556),
    'grid/n100-w3-s2/kira.out.gz': ('ca06446c8d8a38df', 84303, 63158),
    'grid/n100-w5-s1/initial.story.gz': ('dc03e9a7cb509aae', 9033, 7583),
    'grid/n100-w5-s1/kira.out.gz': ('6aeeca088d82eb5d', 84189, 63308),
    'grid/n100-w5-s2/initial.story.gz': ('c1fa84592c612873', 9016, 7512),
    'grid/n100-w5-s2/kira.out.gz': ('6c079154e340e4c7', 83417, 62541),
    'grid/n100-w7-s1/initial.story.gz': ('4723090f11223ca3', 9024, 7599),
    'grid/n100-w7-s1/kira.out.gz': ('eeae75af5e293d15', 84776, 63490),
    'grid/n100-w7-s2/initial.story.gz': ('6a286f9637c38393', 9051, 7523),
    'grid/n100-w7-s2/kira.out.gz': ('9ade13a3c98a4842', 85040, 63661),
    'grid/n200-w3-s1/initial.story.gz': ('be090b14f337f9fd', 17230, 14478),
    'grid/n200-w3-s1/kira.out.gz': ('de4283511c5ee5ac', 158544, 122505),
    'grid/n200-w3-s2/initial.story.gz': ('27d16c6477a3e9ba', 17320, 14417),
    'grid/n200-w3-s2/kira.out.gz': ('c0308a1f00a38beb', 158087, 122222),
    'grid/n200-w5-s1/initial.story.gz': ('a98a93d4a0e5b8d1', 17264, 14412),
    'grid/n200-w5-s1/kira.out.gz': ('e35dcab8801e7cd9', 159423, 123637),
    'grid/n200-w5-s2/initial.story.gz': ('74a3df54aa3f507d', 17306, 14417),
    'grid/n200-w5-s2/kira.out.gz': ('a6a7415ff65045eb', 159076, 122470),
    'grid/n200-w7-s1/initial.story.gz': ('657972a2d962b211', 17251, 14572),
    'grid/n200-w7-s1/kira.out.gz': ('740fde64efa54e2b', 162493, 124885),
    'grid/n200-w7-s2/initial.story.gz': ('9c56f23f864cf244', 17337, 14484),
    'grid/n200-w7-s2/kira.out.gz': ('d452857385a72fab', 162374, 124982),
    'king2600/initial.story.gz': ('eaed3195cdb22c24', 211988, 181560),
    'king2600/kira.out.gz': ('640e4b6c09d52e45', 1960582, 1521988),
    'plummer1k/initial.story.gz': ('f28654c5ad6cc53f', 70868, 61500),
    'plummer1k/kira.out.gz': ('50c1bb84046d62c0', 1397148, 1140593),
    'seed500/initial.story.gz': ('beb78031912e315a', 41540, 35284),
    'seed500/kira.out.gz': ('d97e4185f99ae888', 1352869, 1015113),
}


def baseline_sizes(path: Path, relative: str, text: bytes) -> tuple[int, int]:
    """(gzip -6, zstd -19) sizes of ``text``, the content of corpus file ``path``."""
    pinned = PINNED.get(relative)
    if pinned is not None and hashlib.sha256(path.read_bytes()).hexdigest()[:16] == pinned[0]:
        return pinned[1], pinned[2]
    return len(gzip.compress(text, 6)), len(zstandard.ZstdCompressor(level=19).compress(text))
