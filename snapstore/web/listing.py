"""The runs page: what its query string asks for, and one page of runs with the columns
worth showing (the parameters that differ between the runs shown get columns of their own)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from snapstore.facade import Store

PER_PAGE = 50
MAX_PER_PAGE = 500
_BASE = ("run", "id", "N", "snapshots", "t_first", "t_last", "status", "finished", "pipeline")


@dataclass(frozen=True)
class RunsQuery:
    """A runs page's query string: a filter, a sort column and direction, a page."""

    where: str = ""
    sort: str = "run"
    descending: bool = False
    page: int = 1
    per: int = PER_PAGE

    @classmethod
    def of(cls, params: Mapping[str, str]) -> RunsQuery:
        """The query ``params`` give; a page or size that is not a number is the first or the default."""
        def number(name: str, default: int, high: int) -> int:
            try:
                return min(max(int(params.get(name, default)), 1), high)
            except ValueError:
                return default
        return cls(where=params.get("where", "").strip(), sort=params.get("sort", "run") or "run",
                   descending=params.get("desc", "") in ("1", "true"), page=number("page", 1, 10**9),
                   per=number("per", PER_PAGE, MAX_PER_PAGE))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    def link(self, **changes: Any) -> str:
        """The URL of this query with ``changes`` (a new sort goes back to page 1)."""
        changed = replace(self, **changes)
        pairs = [("where", changed.where), ("sort", changed.sort if changed.sort != "run" else ""),
                 ("desc", "1" if changed.descending else ""), ("page", str(changed.page) if changed.page > 1 else ""),
                 ("per", str(changed.per) if changed.per != PER_PAGE else "")]
        text = urlencode([(key, value) for key, value in pairs if value])
        return "/" + (f"?{text}" if text else "")

    def sorted_by(self, column: str) -> str:
        """The link a column's heading holds: sorted by it, the other way if it already is."""
        return self.link(sort=column, descending=self.sort == column and not self.descending, page=1)


@dataclass
class Listing:
    """One page of runs: ``rows`` (every column, typed, for JSON), ``varied`` (the
    parameter and tag columns whose values differ between these runs) and ``total``."""

    rows: list[dict[str, Any]]
    varied: list[str]
    total: int
    pages: int

    @staticmethod
    def values(row: dict[str, Any]) -> list[tuple[str, Any]]:
        """A run's tags and parameters (``tag.KEY``, ``PROGRAM.FLAG``) that it has."""
        return [(key, value) for key, value in row.items()
                if "." in key and value is not None and value == value]  # NaN: a parameter it lacks


def runs_listing(store: Store, query: RunsQuery) -> Listing:
    """The page ``query`` asks for (``Store.page``)."""
    total, table = store.page(query.where or None, query.sort, query.descending, query.offset, query.per)
    rows = table.records()
    extra = [name for name in table if name not in _BASE]
    varied = [name for name in extra if len({repr(row[name]) for row in rows}) > 1]
    return Listing(rows, varied, total, max(1, -(-total // query.per)))


def compare_state(store: Store, where: str | None) -> Hashable:
    """What the runs matching ``where`` hold now (ids and snapshot counts): an ensemble
    figure drawn for the same state is the same figure."""
    frame = store.frame(where)
    return tuple(zip(frame["id"].tolist(), frame["snapshots"].tolist()))
