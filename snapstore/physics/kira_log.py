"""What kira's stderr says about a run: its energy reports, its warnings, where it meant to
end and where it did.  Read from the text kira writes (Starlab 4.4), never required: a log
that says none of it gives an empty summary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# "Time = 45  N = 500 ..." then "Energies: pot kin total", with "de = X" on that line (t = 0)
# or the next; kira's own indented "  Energies:" lines (as escapers leave) are not reports.
_REPORT = re.compile(r"^Time = (\S+) .*?^Energies: (\S+) (\S+) (\S+)\s+de = (\S+)", re.S | re.M)
_PLANNED = re.compile(r"^t = (\S+),\s+t_end = (\S+)", re.M)
_ENDED = re.compile(r"^End of run at time (\S+)", re.M)
_WARNING = re.compile(r"^.*\bwarning\b.*$", re.I | re.M)


@dataclass(frozen=True)
class EnergyReport:
    """One of kira's periodic reports: the time, the potential, kinetic and total energy,
    and ``de``, the integration error since kira started (escapers' energy booked apart)."""

    time: float
    potential: float
    kinetic: float
    total: float
    de: float


@dataclass
class KiraLog:
    """A summary of one kira stderr: its reports, warnings (each distinct line once, in
    order), the end time asked for (``t_end``) and the time kira said it ended at."""

    reports: list[EnergyReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    t_end: float | None = None
    ended_at: float | None = None

    @property
    def finished(self) -> bool | None:
        """Whether kira reached the end it was asked for (see ``finished``)."""
        return finished(self.t_end, self.ended_at)

    @property
    def relative_error(self) -> float | None:
        """The last report's ``de`` over the first report's |E|."""
        if not self.reports or self.reports[0].total == 0:
            return None
        return self.reports[-1].de / abs(self.reports[0].total)


def finished(t_end: float | None, ended_at: float | None) -> bool | None:
    """Whether kira, asked to run to ``t_end``, reached it (it said it ended at
    ``ended_at``, None when it did not say); None when the end it was asked for is unknown."""
    if t_end is None:
        return None
    return ended_at is not None and ended_at >= t_end


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_kira_log(text: str) -> KiraLog:
    """The summary of a kira stderr (``KiraLog``); what it does not say is left empty."""
    found = KiraLog()
    for match in _REPORT.finditer(text):
        numbers = [_float(group) for group in match.groups()]
        if all(number is not None for number in numbers):
            found.reports.append(EnergyReport(*numbers))  # type: ignore[arg-type]
    found.t_end, found.ended_at = read_kira_end(text)
    found.warnings = list(dict.fromkeys(line.strip() for line in _WARNING.findall(text)))
    return found


def read_kira_end(text: str) -> tuple[float | None, float | None]:
    """``t_end`` and ``ended_at`` of a kira stderr (see ``KiraLog``), read from its last lines
    that say them: a restart appended to the log plans again, and its plan counts.  Ingest
    reads only these, and looks for them from the end rather than through every line."""
    planned = _last(text, "t = ", _PLANNED)
    ended = _last(text, "End of run at time ", _ENDED)
    return (None if planned is None else _float(planned.group(2)),
            None if ended is None else _float(ended.group(1)))


def _last(text: str, start: str, pattern: re.Pattern) -> re.Match | None:
    """The last match of ``pattern`` (which starts with ``start`` at a line's start) in ``text``."""
    end = len(text)
    while (at := text.rfind(start, 0, end)) >= 0:
        if at == 0 or text[at - 1] == "\n":
            found = pattern.match(text, at)
            if found is not None:
                return found
        end = at
    return None
