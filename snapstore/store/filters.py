"""The ``where`` filter language shared by ``Store.runs`` and the CLI.

    makeking.n = 500 and makeking.w >= 5
    (makemass.f in (1, 2) or tag.grid = yes) and not name = 'seed500'
    n_particles > 100 and n_snapshots >= 5

Terms: ``program.flag OP value``, ``tag.KEY OP value``, a run column (``name``,
``status``, ``n_snapshots``, ``n_particles``, ``t_first``, ``t_last``,
``starlab_version``), or an observable over the run's snapshots:
``max(KEY)``, ``min(KEY)``, ``first(KEY)`` or ``last(KEY)`` OP number, where KEY
is a root entry such as ``total_energy`` or a derived one (``energy_error``,
``n_bound``, ``n_multiples`` ...), ``KEY[i]`` a vector's component (``r_lagr[4]``;
``KEY`` alone is ``KEY[0]``), and ``abs(KEY)`` its magnitude:
``max(abs(energy_error)) > 1e-4``.  OP is one of = == != < <= > >= or ``in (v, ...)``.
A value keeps its text: ``name = 007``, ``tag.ver = 1.50`` and
``starlab_version = 4.4.4`` compare exactly what is written.  The field says
how: names, status, version and tags compare as text; counts and times as
numbers; a program's flag as a number when the value is a bare number
(``makeking.n = 500`` also matches ``500.0``) and as text otherwise or when
quoted; ``true`` matches a flag given without a value.  The text is parsed into
SQLAlchemy expressions with bound parameters: no part of it is ever formatted
into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import CompoundSelect, Select, except_, func, intersect, select, union
from sqlalchemy.sql import ColumnElement

from snapstore.errors import FilterError
from snapstore.store.schema import observable, parameter, run, tag

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<op><=|>=|!=|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<bare>[\w.+\-]+(?:\[\d+\])?)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in"}
Ids = Select | CompoundSelect  # a query yielding run ids
TEXT_COLUMNS = {"name", "status", "starlab_version"}
NUMBER_COLUMNS = {"n_snapshots", "n_particles", "t_first", "t_last"}
RUN_COLUMNS = TEXT_COLUMNS | NUMBER_COLUMNS
_FIELD = re.compile(r"[A-Za-z_][\w.\-]*")
_OBSERVABLE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?:\[(?P<idx>\d+)\])?")
AGGREGATES = ("max", "min", "first", "last")


@dataclass
class Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Literal:
    """A value as written (quotes removed), and its number when it is a bare numeric literal."""

    text: str
    number: float | None


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise FilterError(text, position, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            tokens.append(Token("string", re.sub(r"\\(.)", r"\1", raw[1:-1]), position))
        elif kind == "bare" and raw.lower() in _KEYWORDS:
            tokens.append(Token(raw.lower(), raw, position))
        elif kind != "space":
            tokens.append(Token(kind, raw, position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        raise FilterError(self.text, (token or self.current).position, message)

    def take(self, kind: str, text: str | None = None) -> Token:
        token = self.current
        if token.kind != kind or (text is not None and token.text != text):
            self.fail(f"expected {text or kind}, found {token.text or 'end of filter'!r}")
        self.index += 1
        return token

    def parse(self) -> Ids:
        expression = self.or_()
        if self.current.kind != "end":
            self.fail(f"unexpected {self.current.text!r}")
        return expression

    def _chain(self, keyword: str, operand, combine) -> Ids:
        """``operand (keyword operand)*`` combined with ``combine``."""
        terms = [operand()]
        while self.current.kind == keyword:
            self.index += 1
            terms.append(operand())
        return terms[0] if len(terms) == 1 else combine(*map(_operand, terms))

    def or_(self) -> Ids:
        return self._chain("or", self.and_, union)

    def and_(self) -> Ids:
        return self._chain("and", self.not_, intersect)

    def not_(self) -> Ids:
        if self.current.kind == "not":
            self.index += 1
            return except_(select(run.c.id), _operand(self.not_()))
        if self.current.kind == "punct" and self.current.text == "(":
            self.index += 1
            inner = self.or_()
            self.take("punct", ")")
            return inner
        return self.term()

    def value(self) -> Literal:
        token = self.current
        if token.kind == "string":
            self.index += 1
            return Literal(token.text, None)
        if token.kind == "bare":
            self.index += 1
            return Literal(token.text, _number(token.text))
        self.fail(f"expected a value, found {token.text or 'end of filter'!r}")

    def term(self) -> Ids:
        field = self.current
        following = self.tokens[min(self.index + 1, len(self.tokens) - 1)]
        if field.kind == "bare" and field.text in AGGREGATES and following.kind == "punct" and following.text == "(":
            return self.aggregate()
        if field.kind != "bare" or not _FIELD.fullmatch(field.text):
            self.fail(f"expected a field such as makeking.n or name, found {field.text or 'end of filter'!r}")
        self.index += 1
        if self.current.kind == "in":
            self.index += 1
            self.take("punct", "(")
            values = [self.value()]
            while self.current.kind == "punct" and self.current.text == ",":
                self.index += 1
                values.append(self.value())
            self.take("punct", ")")
            matches = [self.compare(field, "=", value) for value in values]
            return matches[0] if len(matches) == 1 else union(*matches)
        op = self.take("op").text
        return self.compare(field, "=" if op == "==" else op, self.value())

    def aggregate(self) -> Ids:
        """``AGG ( [abs (] KEY[i] [)] ) OP number``: runs whose observable, taken over
        their whole snapshots, compares true."""
        function = self.take("bare").text
        self.take("punct", "(")
        magnitude = self.current.kind == "bare" and self.current.text == "abs" \
            and self.tokens[self.index + 1].text == "("
        if magnitude:
            self.index += 2
        field = self.current
        found = _OBSERVABLE.fullmatch(field.text) if field.kind == "bare" else None
        if found is None:
            self.fail("expected an observable such as energy_error or r_lagr[4], "
                      f"found {field.text or 'end of filter'!r}")
        self.index += 1
        for _ in range(1 + magnitude):
            self.take("punct", ")")
        op = self.take("op").text
        value = self.value()
        if value.number is None:
            self.fail(f"{function}({field.text}) is a number: {value.text!r} is not one", field)
        return observed(function, found["key"], int(found["idx"] or 0), magnitude, "=" if op == "==" else op,
                        value.number)

    def compare(self, field: Token, op: str, value: Literal) -> Select:
        """The ids of the runs for which one comparison holds."""
        name = field.text
        if name in TEXT_COLUMNS:
            return select(run.c.id).where(_apply(run.c[name], op, value.text))
        if name in NUMBER_COLUMNS:
            if value.number is None:
                self.fail(f"{name} is a number: {value.text!r} is not one", field)
            return select(run.c.id).where(_apply(run.c[name], op, value.number))
        head, _, rest = name.partition(".")
        if not rest:
            self.fail(f"unknown field {name!r}: use program.flag, tag.KEY or one of {sorted(RUN_COLUMNS)}", field)
        if head == "tag":
            return select(tag.c.run_id).where(tag.c.key == rest, _apply(tag.c.value, op, value.text))
        number = 1.0 if value == Literal("true", None) else value.number
        condition = _apply(parameter.c.num_value, op, number) if number is not None \
            else _apply(parameter.c.value, op, value.text)
        return select(parameter.c.run_id).where(parameter.c.program == head, parameter.c.flag == rest, condition)


def observed(function: str, key: str, idx: int, magnitude: bool, op: str, number: float) -> Select:
    """The ids of the runs whose ``function`` (max, min, first, last) of an observable
    compares true with ``number``; ``magnitude`` compares its absolute value."""
    value = func.abs(observable.c.value) if magnitude else observable.c.value
    match = (observable.c.key == key, observable.c.idx == idx)
    if function in ("max", "min"):
        total = func.max(value) if function == "max" else func.min(value)
        return select(observable.c.run_id).where(*match).group_by(observable.c.run_id).having(_apply(total, op, number))
    end = func.min(observable.c.seq) if function == "first" else func.max(observable.c.seq)
    ends = select(observable.c.run_id, end.label("seq")).where(*match).group_by(observable.c.run_id).subquery()
    return (select(observable.c.run_id)
            .join(ends, (ends.c.run_id == observable.c.run_id) & (ends.c.seq == observable.c.seq))
            .where(*match, _apply(value, op, number)))


def _number(text: str) -> float | None:
    """The number a bare literal spells (007, -0.25, 1e-5), or None (4.4.4, yes, inf stays text)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _operand(ids: Ids) -> Select:
    """A set operation nested in another, as a plain SELECT (SQLite refuses parentheses there)."""
    if isinstance(ids, CompoundSelect):
        inner = ids.subquery()
        return select(inner.c[0])
    return ids


def _apply(column, op: str, value: object) -> ColumnElement:
    return {"=": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
            ">": column.__gt__, ">=": column.__ge__}[op](value)


def compile_filter(text: str) -> ColumnElement:
    """A SQLAlchemy condition on the ``run`` table for a filter string.

    Each term selects the ids of the runs it holds for, through an index; and,
    or and not become INTERSECT, UNION and EXCEPT of those id sets.  So the work
    follows the matching rows under any query plan, even before the database
    has statistics (correlated lookups took 89 s at 100,000 runs on a freshly
    filled PostgreSQL).
    """
    if not text or not text.strip():
        raise FilterError(text or "", 0, "empty filter")
    return run.c.id.in_(_Parser(text).parse())
