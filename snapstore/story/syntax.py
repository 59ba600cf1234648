"""The line grammar of Starlab stories, shared by the tree builder and the codec.

A story is a sequence of lines: ``(Kind`` opens a sub-story, ``)Kind`` closes it,
and every other line is either a ``key = value`` entry or free text.  An entry
keeps its exact spacing so the line can be printed back byte for byte.
"""

from __future__ import annotations

import re

# Starlab writes `  key = value`, `  key  =  value` and `  mass_scale     =  x`;
# the key is one token, so Log prose such as "seed = 500" after other words
# stays free text.  DOTALL keeps a stray carriage return inside the value.
ENTRY = re.compile(r"( *)([^ =]+)( +)=( *)(.*)", re.DOTALL)
KIND = re.compile(r"\w+")

OPEN = "("
CLOSE = ")"
EOL = "\n"
EOL_BYTES = b"\n"
