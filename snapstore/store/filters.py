"""The ``where`` filter language shared by ``Store.runs`` and the CLI.

    makeking.n = 500 and makeking.w >= 5
    (makemass.f in (1, 2) or tag.grid = yes) and not name = 'seed500'
    n_particles > 100 and n_snapshots >= 5

Terms: ``program.flag OP value``, ``tag.KEY OP value``, a run column (``name``,
``status``, ``n_snapshots``, ``n_particles``, ``t_first``, ``t_last``,
``starlab_version``; ``t_end`` and ``ended_at``, what kira's stderr says of its end),
``finished = true|false`` (kira reached the end it was asked for), or an observable
over the run's snapshots:
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

from sqlalchemy import CompoundSelect, Connection, Select, Table, except_, exists, func, intersect, or_, select, union
from sqlalchemy import text as sql_text
from sqlalchemy.sql import ColumnElement

from snapstore.errors import FilterError, suggested
from snapstore.physics.components import OBSERVABLE, missing_component
from snapstore.provenance import finite_number
from snapstore.store.schema import (
    command,
    observable,
    observable_constant,
    observable_key,
    observable_value,
    parameter,
    run,
    tag,
)

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<op><=|>=|!=|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<string>'(?:[^'\\]++|\\.)*+'|"(?:[^"\\]++|\\.)*+")
  | (?P<bare>[\w.+\-]+(?:\[\d+\])?)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in"}
Ids = Select | CompoundSelect  # a query yielding run ids
TEXT_COLUMNS = {"name", "status", "starlab_version"}
NUMBER_COLUMNS = {"n_snapshots", "n_particles", "t_first", "t_last", "t_end", "ended_at"}
RUN_COLUMNS = TEXT_COLUMNS | NUMBER_COLUMNS | {"finished"}
_FIELD = re.compile(r"[A-Za-z_][\w.\-]*")
AGGREGATES = ("max", "min", "first", "last")
# Bounds that keep a filter's SQL within what both databases take (SQLite: 500 terms in a
# compound SELECT, an expression depth of 1,000) and its parsing within Python's stack;
# a filter past them is refused, in time linear in its length.
MAX_TERMS = 200
MAX_DEPTH = 50
MAX_VALUES = 10_000  # in one ``in (...)``
MAX_INDEX = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    """The filter's tokens, in one pass; a character that is not Unicode text is refused."""
    bad = _SURROGATE.search(text)
    if bad:
        raise FilterError(text, bad.start(), "a character that is not Unicode text (a lone surrogate)")
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
        self.depth = 0  # parentheses and nots around the current token
        self.terms = 0
        self.programs: dict[str, Token] = {}  # each program and observable named, at its first place
        self.observables: dict[str, Token] = {}
        self.components: dict[tuple[str, int], Token] = {}  # each KEY[i] with i above 0, at its first place

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
        if self.current.kind == "not" or (self.current.kind == "punct" and self.current.text == "("):
            if self.depth >= MAX_DEPTH:
                self.fail(f"the filter nests parentheses and nots more than {MAX_DEPTH} deep")
            self.depth += 1
            try:
                if self.current.kind == "not":
                    self.index += 1
                    return except_(select(run.c.id), _operand(self.not_()))
                self.index += 1
                inner = self.or_()
                self.take("punct", ")")
                return inner
            finally:
                self.depth -= 1
        return self.term()

    def count_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            self.fail(f"the filter has more than {MAX_TERMS} terms: use in (...) for many values of one field")

    def value(self) -> Literal:
        token = self.current
        if token.kind == "string":
            self.index += 1
            return Literal(token.text, None)
        if token.kind == "bare":
            self.index += 1
            return Literal(token.text, finite_number(token.text))  # 007, -0.25, 1e-5; 4.4.4, yes, inf stay text
        self.fail(f"expected a value, found {token.text or 'end of filter'!r}")

    def term(self) -> Ids:
        field = self.current
        following = self.tokens[min(self.index + 1, len(self.tokens) - 1)]
        if field.kind == "bare" and field.text in AGGREGATES and following.kind == "punct" and following.text == "(":
            return self.aggregate()
        if field.kind != "bare" or not _FIELD.fullmatch(field.text):
            self.fail(f"expected a field such as makeking.n or name, found {field.text or 'end of filter'!r}")
        self.count_term()
        self.index += 1
        if self.current.kind == "in":
            self.index += 1
            self.take("punct", "(")
            values = [self.value()]
            while self.current.kind == "punct" and self.current.text == ",":
                self.index += 1
                values.append(self.value())
                if len(values) > MAX_VALUES:
                    self.fail(f"more than {MAX_VALUES:,} values in one in (...)")
            self.take("punct", ")")
            return self.compare(field, "in", values)
        op = self.take("op").text
        return self.compare(field, "=" if op == "==" else op, [self.value()])

    def aggregate(self) -> Ids:
        """``AGG ( [abs (] KEY[i] [)] ) OP number``: runs whose observable, taken over
        their whole snapshots, compares true."""
        self.count_term()
        function = self.take("bare").text
        self.take("punct", "(")
        magnitude = self.current.kind == "bare" and self.current.text == "abs" \
            and self.tokens[self.index + 1].text == "("
        if magnitude:
            self.index += 2
        field = self.current
        found = OBSERVABLE.fullmatch(field.text) if field.kind == "bare" else None
        if found is None:
            self.fail("expected an observable such as energy_error or r_lagr[4], "
                      f"found {field.text or 'end of filter'!r}")
        if found["idx"] and (len(found["idx"]) > 10 or int(found["idx"]) > MAX_INDEX):
            self.fail(f"component index {found['idx'][:20]} is larger than any vector holds", field)
        self.observables.setdefault(found["key"], field)
        if int(found["idx"] or 0) > 0:
            self.components.setdefault((found["key"], int(found["idx"])), field)
        self.index += 1
        for _ in range(1 + magnitude):
            self.take("punct", ")")
        op = self.take("op").text
        value = self.value()
        if value.number is None:
            self.fail(f"{function}({field.text}) is a number: {value.text!r} is not one", field)
        return observed(function, found["key"], int(found["idx"] or 0), magnitude, "=" if op == "==" else op,
                        value.number)

    def compare(self, field: Token, op: str, values: list[Literal]) -> Select:
        """The ids of the runs for which a comparison holds (``in``: equal to one of ``values``)."""
        name = field.text
        texts = [value.text for value in values]
        if name in TEXT_COLUMNS:
            return select(run.c.id).where(_apply(run.c[name], op, texts))
        if name == "finished":
            return self.finished(field, op, texts)
        if name in NUMBER_COLUMNS:
            wrong = next((value for value in values if value.number is None), None)
            if wrong is not None:
                self.fail(f"{name} is a number: {wrong.text!r} is not one", field)
            return select(run.c.id).where(_apply(run.c[name], op, [value.number for value in values]))
        head, _, rest = name.partition(".")
        if not rest:
            self.fail(f"unknown field {name!r}: use program.flag, tag.KEY or one of {sorted(RUN_COLUMNS)}", field)
        if head == "tag":
            return select(tag.c.run_id).where(tag.c.key == rest, _apply(tag.c.value, op, texts))
        self.programs.setdefault(head, field)
        numbers = [1.0 if value == Literal("true", None) else value.number for value in values]
        by_number = [number for number in numbers if number is not None]
        by_text = [value.text for value, number in zip(values, numbers) if number is None]
        conditions = ([_apply(parameter.c.num_value, op, by_number)] if by_number else []) + \
                     ([_apply(parameter.c.value, op, by_text)] if by_text else [])
        return select(parameter.c.run_id).where(parameter.c.program == head, parameter.c.flag == rest,
                                                or_(*conditions))

    def finished(self, field: Token, op: str, texts: list[str]) -> Select:
        """``finished = true|false`` (or ``!=``): the runs whose kira's stderr says they
        reached the end they were asked for, or that they did not; a run none says of is neither."""
        wanted = {"true": True, "false": False}
        if op not in ("=", "==", "!=") or len(texts) != 1 or texts[0].lower() not in wanted:
            self.fail("finished is compared with true or false (= or !=)", field)
        reached = wanted[texts[0].lower()] != (op == "!=")
        known = run.c.t_end.is_not(None)
        ended = run.c.ended_at.is_not(None) & (run.c.ended_at >= run.c.t_end)
        return select(run.c.id).where(known, ended if reached else ~ended)


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


def _operand(ids: Ids) -> Select:
    """A set operation nested in another, as a plain SELECT (SQLite refuses parentheses there)."""
    if isinstance(ids, CompoundSelect):
        inner = ids.subquery()
        return select(inner.c[0])
    return ids


def _apply(column, op: str, value: object) -> ColumnElement:
    """``column OP value``; ``value`` may be a list: of one value for an operator, of any
    number for ``in``."""
    if isinstance(value, list):
        if op == "in":
            return column.in_(value)
        (value,) = value
    return {"=": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
            ">": column.__gt__, ">=": column.__ge__}[op](value)


def compile_filter(text: str, connection: Connection | None = None) -> ColumnElement:
    """A SQLAlchemy condition on the ``run`` table for a filter string; given the store's
    ``connection``, a program or observable that no run in it has is a ``FilterError``
    listing those it has (a misspelling would otherwise match nothing, silently).

    Each term selects the ids of the runs it holds for, through an index; and,
    or and not become INTERSECT, UNION and EXCEPT of those id sets.  So the work
    follows the matching rows under any query plan, even before the database
    has statistics (correlated lookups took 89 s at 100,000 runs on a freshly
    filled PostgreSQL).
    """
    if not text or not text.strip():
        raise FilterError(text or "", 0, "empty filter")
    parser = _Parser(text)
    ids = parser.parse()
    if connection is not None:
        _known(connection, parser, "program", command.c.program, parser.programs)
        _known(connection, parser, "observable", observable.c.key, parser.observables)
        _known_components(connection, parser)
    return run.c.id.in_(ids)


def _known(connection: Connection, parser: _Parser, what: str, column, named: dict[str, Token]) -> None:
    for name, token in named.items():
        if not connection.execute(select(exists().where(column == name))).scalar():
            hint, listed = suggested(name, _distinct(connection, column))
            parser.fail(f"no {what} {name!r} in this store{hint}; {what}s: {listed or 'none yet'}", token)


def _known_components(connection: Connection, parser: _Parser) -> None:
    """A component that no run has (``r_lagr[99]``, ``total_energy[1]``) is refused, as an
    unknown key is, saying how many components the first run holding the key has.  The tables are read
    by their primary keys (key, run, ...), not through the view, whose joins would read every
    snapshot on the way to a component that is not there."""
    for (key, idx), token in parser.components.items():
        key_id = connection.execute(select(observable_key.c.id).where(observable_key.c.key == key)).scalar_one()
        tables = (observable_value, observable_constant)
        if any(connection.execute(select(exists().where(table.c.key_id == key_id, table.c.idx == idx))).scalar()
               for table in tables):
            continue
        last = next(value for value in (_last_component(connection, table, key_id) for table in tables)
                    if value is not None)
        parser.fail(missing_component("no run in this store has", key, idx, last + 1), token)


def _last_component(connection: Connection, table: Table, key_id: int) -> int | None:
    """The largest component index of a key in the first run ``table`` holds it for (None: no run)."""
    first = connection.execute(select(table.c.run).where(table.c.key_id == key_id).order_by(table.c.run)
                               .limit(1)).scalar()
    if first is None:
        return None
    return connection.execute(select(func.max(table.c.idx)).where(table.c.key_id == key_id,
                                                                  table.c.run == first)).scalar()


def observable_keys(connection: Connection) -> list[str]:
    """Every observable key the store has, in order."""
    return _distinct(connection, observable.c.key)


def _distinct(connection: Connection, column) -> list[str]:
    """The distinct values of a column, in order: for ``observable.key``, one index step
    each (a loose index scan: a plain DISTINCT would read every row of that large table)."""
    if column is not observable.c.key:
        return list(connection.execute(select(column).distinct().order_by(column)).scalars())
    table, name = column.table.name, column.name
    query = sql_text(f"WITH RECURSIVE k(v) AS (SELECT min({name}) FROM {table} UNION ALL "
                     f"SELECT (SELECT min({name}) FROM {table} WHERE {name} > k.v) FROM k WHERE k.v IS NOT NULL) "
                     "SELECT v FROM k WHERE v IS NOT NULL")
    return list(connection.execute(query).scalars())
