"""Who ran what: the Starlab pipeline from a story's Log or a commands file, and
the user, host and software of each ingest."""

from __future__ import annotations

import getpass
import platform
import re
import shlex
import sys

from snapstore._version import __version__
from snapstore.story import Story

_COMMAND = re.compile(r"\s*Starlab (?P<version>\S+) : (?P<command>.*\S)\s*$")
_SEED = re.compile(r"\s*random number generator seed = (?P<seed>-?\d+)\s*$")
_REDIRECT = re.compile(r"^\d*[<>]")


def parse_arguments(argv: list[str]) -> dict[str, str]:
    """Starlab flags as ``{flag: value}``; a flag without a value is ``"true"``.

    ``-e -0.25`` is a flag with a negative value: a token after a flag is its
    value unless it looks like another flag (a dash and a letter).
    """
    parameters: dict[str, str] = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        position += 1
        if not (token.startswith("-") and len(token) > 1 and not _is_number(token)):
            continue
        flag = token.lstrip("-")
        following = argv[position] if position < len(argv) else None
        if following is not None and not (following.startswith("-") and not _is_number(following)):
            parameters[flag] = following
            position += 1
        else:
            parameters[flag] = "true"
    return parameters


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def command_entry(argv: list[str], starlab_version: str | None = None, seed: str | None = None) -> dict:
    """One pipeline step as stored in a ``pipeline_recorded`` event."""
    parameters = parse_arguments(argv[1:])
    if seed is not None:
        parameters.setdefault("seed", seed)
    return {"program": argv[0], "argv": argv, "starlab_version": starlab_version, "parameters": parameters}


def pipeline_from_log(story: Story) -> list[dict]:
    """The commands Starlab wrote into the root ``Log`` (with their seeds)."""
    try:
        log = story.child("Log")
    except KeyError:
        return []
    commands: list[dict] = []
    pending: tuple[list[str], str] | None = None
    for line in log.lines:
        found = _COMMAND.match(line)
        if found:
            if pending:
                commands.append(command_entry(*pending))
            pending = (shlex.split(found["command"]), found["version"])
            continue
        seed = _SEED.match(line)
        if seed and pending:
            commands.append(command_entry(*pending, seed=seed["seed"]))
            pending = None
    if pending:
        commands.append(command_entry(*pending))
    return commands


def pipeline_from_commands(text: str, logged: list[dict] | None = None) -> list[dict]:
    """Commands given by the user, one per line (a ``commands.txt``), redirections
    dropped; Starlab versions and seeds are taken from the Log where programs match."""
    by_program = {item["program"]: item for item in logged or []}
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        argv: list[str] = []
        skip = False
        for word in words:
            if skip:
                skip = False
                continue
            if word == "|":
                continue
            if _REDIRECT.match(word):
                # "> king.story" names its file in the next word, ">king.story" in this one
                skip = word.lstrip("0123456789") in ("<", ">", ">>")
                continue
            argv.append(word)
        if argv:
            logged_item = by_program.get(argv[0], {})
            commands.append(command_entry(argv, logged_item.get("starlab_version"),
                                          logged_item.get("parameters", {}).get("seed")))
    return commands


def who_and_where() -> dict[str, str]:
    """The user, host and software behind an ingest."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": platform.node(), "snapstore_version": __version__,
            "python": sys.version.split()[0]}
