"""The decoder's last stage: a layout printed back as the story's exact text, by the
compiled kernel where it is built, else by ``render_reference``."""

from __future__ import annotations

from snapstore import kernel
from snapstore.codec.columns import CHILD, LINE
from snapstore.codec.structure import Layout
from snapstore.story.syntax import CLOSE, EOL, OPEN


def iter_decoded_lines(structure: Layout):
    """The story's lines, in order, rebuilt from a layout (no recursion: any depth)."""
    values = [iter(column.values()) for column in structure.columns]
    free = iter(structure.lines)
    templates = structure.templates
    node_template = structure.node_template.tolist()
    next_node = 1
    kind, items = templates[node_template[0]]
    yield OPEN + kind
    stack: list[tuple[str, list, int]] = []
    position = 0
    while True:
        if position < len(items):
            item = items[position]
            position += 1
            if item == CHILD:
                stack.append((kind, items, position))
                kind, items = templates[node_template[next_node]]
                next_node += 1
                position = 0
                yield OPEN + kind
            elif item == LINE:
                yield next(free)
            else:
                yield item[1] + next(values[item[0]])
        else:
            yield CLOSE + kind
            if not stack:
                return
            kind, items, position = stack.pop()


def text_from_layout(structure: Layout) -> str:
    """The exact story text of a layout already at hand (its columns stay decoded for
    other readers of the same layout)."""
    if kernel.COMPILED is not None:
        return bytes_from_layout(structure).decode("utf-8")
    return render_reference(structure)


def render_reference(structure: Layout) -> str:
    """The reference for the compiled ``render``: the layout's lines joined."""
    text = EOL.join(iter_decoded_lines(structure))
    return text + EOL if structure.final_newline else text


def bytes_from_layout(structure: Layout) -> bytes:
    """The exact story text of a layout as UTF-8 bytes (what an export writes)."""
    if kernel.COMPILED is None:
        return render_reference(structure).encode("utf-8")
    kinds, items, entry_column, entry_prefix = structure.render_templates
    rendered = kernel.render(structure.node_template, kinds, items, entry_column, entry_prefix,
                             structure.render_columns(), structure.lines, structure.final_newline)
    return render_reference(structure).encode("utf-8") if rendered is None else rendered

