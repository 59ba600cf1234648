"""The in-memory story tree: kind, entries with their spacing, free text, sub-stories."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from snapstore.errors import StoryFormatError
from snapstore.story.syntax import CLOSE, ENTRY, EOL, OPEN

_LINES = "<lines>"  # what a refusal of from_lines names: lines, not a file


class Entry:
    """One ``key = value`` line, with the exact spacing it was written with."""

    __slots__ = ("after", "before", "indent", "key", "value")

    def __init__(self, key: str, value: str, indent: str = "  ", before: str = " ", after: str = " ") -> None:
        self.indent = indent
        self.key = key
        self.before = before
        self.after = after
        self.value = value

    @property
    def prefix(self) -> str:
        """Everything on the line before the value."""
        return f"{self.indent}{self.key}{self.before}={self.after}"

    def __str__(self) -> str:
        return self.prefix + self.value

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, {self.value!r})"


class Story:
    """A Starlab story: ``story.kind``, values by key, free ``lines``, ``children``.

    Items keep their original order, so ``str(story)`` gives back Starlab's text
    exactly.  Values are strings as written; ``float``, ``int`` and ``vector``
    convert them.
    """

    __slots__ = ("final_newline", "items", "kind")

    def __init__(self, kind: str, items: list | None = None, final_newline: bool = True) -> None:
        self.kind = kind
        self.items: list = items if items is not None else []
        self.final_newline = final_newline

    # -- building -----------------------------------------------------------------
    @classmethod
    def from_lines(cls, lines: list[str], final_newline: bool = True) -> Story:
        """Build a tree from the lines of one well-formed root story (no newlines);
        StoryFormatError naming the line of anything else, whose tree would not print
        the lines back."""
        stack: list[Story] = []
        root: Story | None = None
        for number, line in enumerate(lines, start=1):
            first = line[:1]
            if first == OPEN:
                story = cls(line[1:])
                if stack:
                    stack[-1].items.append(story)
                elif root is None:
                    root = story
                else:
                    raise StoryFormatError(_LINES, number, "more than one root story where one was expected")
                stack.append(story)
            elif first == CLOSE:
                if not stack or stack[-1].kind != line[1:]:
                    raise StoryFormatError(_LINES, number, f"{line[:40]!r} does not close the story open there")
                stack.pop()
            elif not stack:
                raise StoryFormatError(_LINES, number, "text outside any story")
            else:
                match = ENTRY.fullmatch(line)
                if match:
                    indent, key, before, after, value = match.groups()
                    stack[-1].items.append(Entry(key, value, indent, before, after))
                else:
                    stack[-1].items.append(line)
        if root is None or stack:
            raise StoryFormatError(_LINES, max(len(lines), 1), "the lines end inside a story" if stack else "no story")
        root.final_newline = final_newline
        return root

    # -- reading ------------------------------------------------------------------
    @property
    def entries(self) -> list[Entry]:
        """The ``key = value`` entries of this story (not of sub-stories), in order."""
        return [item for item in self.items if isinstance(item, Entry)]

    @property
    def values(self) -> dict[str, str]:
        """Values by key; where a key repeats, the first one wins, as in Starlab."""
        values: dict[str, str] = {}
        for entry in self.entries:
            values.setdefault(entry.key, entry.value)
        return values

    @property
    def lines(self) -> list[str]:
        """Free-text lines, such as the command history in a ``Log``."""
        return [item for item in self.items if isinstance(item, str)]

    @property
    def children(self) -> list[Story]:
        """Sub-stories in order."""
        return [item for item in self.items if isinstance(item, Story)]

    @property
    def particles(self) -> list[Story]:
        """The ``Particle`` sub-stories (stars, or nodes holding a binary)."""
        return [child for child in self.children if child.kind == "Particle"]

    def child(self, kind: str) -> Story:
        """The first sub-story of this kind; KeyError if there is none."""
        for child in self.children:
            if child.kind == kind:
                return child
        raise KeyError(f"{self.kind} story has no {kind} sub-story")

    def __getitem__(self, key: str) -> str:
        for entry in self.entries:
            if entry.key == key:
                return entry.value
        raise KeyError(key)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key`` or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return any(entry.key == key for entry in self.entries)

    def float(self, key: str) -> float:
        """A value as a float."""
        return float(self[key])

    def int(self, key: str) -> int:
        """A value as an int."""
        return int(self[key])

    def vector(self, key: str) -> np.ndarray:
        """A whitespace-separated value (``r``, ``v``, ``r_lagr``...) as a float array."""
        return np.array(self[key].split(), dtype=np.float64)

    # pystarlab names, for users coming from the original notebook
    @property
    def story_vals(self) -> dict[str, str]:
        return self.values

    @property
    def story_lines(self) -> list[str]:
        return self.lines

    @property
    def story_subobjects(self) -> list[Story]:
        return self.children

    # -- printing -----------------------------------------------------------------
    def iter_lines(self) -> Iterator[str]:
        """Starlab's text, line by line, without newlines (no recursion: any depth)."""
        stack: list[tuple[Story, int]] = [(self, 0)]
        yield OPEN + self.kind
        while stack:
            story, position = stack.pop()
            items = story.items
            while position < len(items):
                item = items[position]
                position += 1
                if isinstance(item, Story):
                    stack.append((story, position))
                    stack.append((item, 0))
                    yield OPEN + item.kind
                    break
                yield item if isinstance(item, str) else str(item)
            else:
                yield CLOSE + story.kind

    def __str__(self) -> str:
        text = EOL.join(self.iter_lines())
        return text + EOL if self.final_newline else text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Story) and str(self) == str(other)

    __hash__ = None  # type: ignore[assignment]  # mutable tree

    def __repr__(self) -> str:
        return (
            f"<Story {self.kind}: {len(self.entries)} values, {len(self.lines)} lines, "
            f"{len(self.children)} sub-stories>"
        )
