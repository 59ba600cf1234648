"""What ran: the Starlab pipeline from the stories' Logs and a commands file.

The Log is what actually ran: every Starlab program appends its command line
(and the seed it drew) to the root Log.  A ``commands.txt`` adds what the Log
cannot know (steps that write no Log, the redirections of the run); where the
two disagree the Log is kept and the disagreement is recorded beside the step.
"""

from __future__ import annotations

import math
import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only named here: the command line's lean reads type parameters with this module
    from snapstore.story import Story

_COMMAND = re.compile(r"\s*Starlab (?P<version>\S+) : (?P<command>.*\S)\s*$")
_SEED = re.compile(r"\s*random number generator seed = (?P<seed>-?\d+)\s*$")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Operators of a shell command line, longest first; "2>" and the like are found by the tokenizer.
_OPERATORS = ("&&", "||", ";;", "|&", ">>", "<<", ">&", "<&", "&>", ">|", "|", "&", ";", "<", ">", "(", ")")
_SEPARATORS = {"&&", "||", ";;", "|&", "|", "&", ";", "(", ")"}
# Not steps of a simulation: stream plumbing between Starlab programs, and shell chores.
_NOT_STARLAB = {"tee", "cat", "zcat", "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd", "pv",
                "time", "nice", "nohup", "env", "echo", "cd", "export", "set", "mkdir", "cp", "mv", "rm", "ln",
                "date", "sleep", "true", "false"}


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


INTEGER = re.compile(r"[+-]?\d+")  # a parameter that is a whole number (Starlab's flags are ints or reals)


def finite_number(text: str | float | None) -> float | None:
    """The finite number ``text`` says (or is), else None."""
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parameter_value(text: str) -> bool | int | float | str:
    """One parameter's value typed: True for a flag given without one (``"true"``), an int
    for a whole number (within int64), a float for any other finite number, else the text."""
    if text == "true":
        return True
    if INTEGER.fullmatch(text) and -2**63 <= int(text) < 2**63:
        return int(text)
    number = finite_number(text)
    return text if number is None else number


def command_entry(argv: list[str], starlab_version: str | None = None, seed: str | None = None) -> dict:
    """One pipeline step as stored in a ``pipeline_recorded`` event."""
    parameters = parse_arguments(argv[1:])
    if seed is not None:
        parameters.setdefault("seed", seed)
    return {"program": os.path.basename(argv[0]), "argv": argv, "starlab_version": starlab_version,
            "parameters": parameters}


def pipeline_from_log(story: Story) -> list[dict]:
    """The commands Starlab wrote into the root ``Log``, each with its seed, in order;
    a program run twice (a restarted kira) is two commands."""
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
            pending = (split_words(found["command"]), found["version"])
            continue
        seed = _SEED.match(line)
        if seed and pending:
            commands.append(command_entry(*pending, seed=seed["seed"]))
            pending = None
    if pending:
        commands.append(command_entry(*pending))
    return commands


def _tokens(line: str) -> list[tuple[str, bool]]:
    """A shell line as (token, is_operator) pairs, quotes and escapes read as a POSIX
    shell reads them; a digit run written against a redirection (``2>``) is part of it."""
    tokens: list[tuple[str, bool]] = []
    word: list[str] = []
    quoted = False  # the current word had quotes: "2">f is a word and a redirection
    position = 0

    def end_word() -> None:
        nonlocal quoted
        if word or quoted:
            tokens.append(("".join(word), False))
        word.clear()
        quoted = False

    while position < len(line):
        char = line[position]
        if char == "\\" and position + 1 < len(line):
            word.append(line[position + 1])
            position += 2
            continue
        if char in "'\"":
            close = line.find(char, position + 1)
            if close < 0:
                raise ValueError("no closing quotation")
            body = line[position + 1:close]
            word.append(body if char == "'" else re.sub(r'\\([\\"$`])', r"\1", body))
            quoted = True
            position = close + 1
            continue
        if char == "#" and not word and not quoted:
            break
        if char.isspace():
            end_word()
            position += 1
            continue
        operator = next((op for op in _OPERATORS if line.startswith(op, position)), None)
        if operator is None:
            word.append(char)
            position += 1
            continue
        if operator[0] in "<>" and word and not quoted and "".join(word).isdigit():
            word.clear()  # a file descriptor: "2>" redirects stderr
        end_word()
        tokens.append((operator, True))
        position += len(operator)
    end_word()
    return tokens


def split_words(line: str) -> list[str]:
    """The words of one command, as a shell splits them."""
    return list(_words(line))


@lru_cache(maxsize=256)
def _words(line: str) -> tuple[str, ...]:
    # every snapshot's Log repeats the run's commands: each line is split once
    return tuple(token for token, _ in _tokens(line))


def split_command_line(line: str) -> list[list[str]]:
    """The simple commands of a shell line, each as its argv: split on pipes, ``;``,
    ``&&`` and the like, with redirections and their files, leading ``NAME=value``
    assignments and stream plumbing (``tee``, ``gzip``, ``cat`` ...) left out."""
    commands: list[list[str]] = []
    argv: list[str] = []
    skip_next = False
    for token, operator in _tokens(line) + [(";", True)]:
        if skip_next:
            skip_next = False
            if not operator:
                continue
        if operator and token in _SEPARATORS:
            if argv and os.path.basename(argv[0]) not in _NOT_STARLAB:
                commands.append(argv)
            argv = []
        elif operator:
            skip_next = True  # the file a redirection names
        elif argv or not _ASSIGNMENT.match(token):
            argv.append(token)
    return commands


def pipeline_from_commands(text: str) -> list[dict]:
    """The Starlab steps of a ``commands.txt``, read line by line as a shell would."""
    return [command_entry(argv) for line in text.splitlines() for argv in split_command_line(line)]


def _line(item: dict) -> tuple:
    return item["program"], tuple(item["argv"][1:])


def extend_pipeline(known: list[dict], logged: list[dict], seq: int) -> tuple[list[dict], str | None]:
    """The pipeline after snapshot ``seq``, whose Log holds ``logged``: commands it adds
    after the ``known`` ones (a restart's kira) are appended, marked with ``seq``.
    A Log that does not continue the known pipeline is described in the second
    value, and its commands that are new are appended all the same: nothing the
    Logs say is dropped."""
    known_lines, logged_lines = [_line(item) for item in known], [_line(item) for item in logged]
    if known_lines[:len(logged_lines)] == logged_lines:
        return known, None
    if logged_lines[:len(known_lines)] == known_lines:
        return known + [{**item, "first_seq": seq} for item in logged[len(known):]], None
    new = [{**item, "first_seq": seq} for item, line in zip(logged, logged_lines) if line not in known_lines]
    return known + new, (f"the Log of snapshot #{seq} does not continue the pipeline read before it: "
                         f"{'; '.join(' '.join(item['argv']) for item in logged)}")


def merge_pipelines(logged: list[dict], given: list[dict]) -> list[dict]:
    """The Log's commands and a commands file's, as one pipeline.

    Steps are matched by program, in order (a longest common subsequence, as
    ``diff`` matches lines); a matched step keeps the Log's command line and notes
    in ``conflict`` where the file's flags differ.  Steps only one side knows keep
    their place.  Each step's ``origin`` is ``log``, ``commands`` or ``both``.
    """
    n, m = len(logged), len(given)
    common = [[0] * (m + 1) for _ in range(n + 1)]
    for i in reversed(range(n)):
        for j in reversed(range(m)):
            common[i][j] = (common[i + 1][j + 1] + 1 if logged[i]["program"] == given[j]["program"]
                            else max(common[i + 1][j], common[i][j + 1]))
    merged: list[dict] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and logged[i]["program"] == given[j]["program"] \
                and common[i][j] == common[i + 1][j + 1] + 1:
            merged.append({**logged[i], "origin": "both", "conflict": _conflict(logged[i], given[j])})
            i, j = i + 1, j + 1
        elif i < n and (j == m or common[i + 1][j] >= common[i][j + 1]):
            merged.append({**logged[i], "origin": "log", "conflict": None})
            i += 1
        else:
            merged.append({**given[j], "origin": "commands", "conflict": None, "first_seq": None})
            j += 1
    return merged


def _conflict(logged: dict, given: dict) -> str | None:
    """How a commands file's step differs from what the Log says ran, if it does."""
    ran = {flag: value for flag, value in logged["parameters"].items()
           if not (flag == "seed" and "seed" not in parse_arguments(logged["argv"][1:]))}
    if ran == given["parameters"]:
        return None
    return (f"commands file: {' '.join(given['argv'])}; Log: {' '.join(logged['argv'])} "
            "(the Log's is kept)")
