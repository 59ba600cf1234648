"""The figures astronomers look at first, drawn from the store with matplotlib.

``plot_runs``: Lagrangian radii, relative energy error and star counts against
time, for one run or a few; ``plot_ensemble``: many runs grouped by a parameter or a
tag, each group's median and 16-84% band; ``plot_snapshot``: the stars of one snapshot
in x-y and x-z, members of binaries and larger multiples marked.  Figures are
built without pyplot, so nothing here touches a notebook's global state.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from snapstore.blobs import PosixStorage
from snapstore.errors import InvalidArgumentError, writing_to
from snapstore.physics.observables import R_LAGR_FRACTIONS, r_lagr_label
from snapstore.reading import Run, Snapshot
from snapstore.story import Story

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from snapstore.facade import Store

RUN_SIZE = (11.0, 8.0)  # inches; at DPI, the PNG is 1100 x 800 pixels
SNAPSHOT_SIZE = (11.0, 5.5)
DPI = 100


_INSTALL = "plotting needs matplotlib: pip install 'snapstore[plot]'"


def _figure(rows: int, columns: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise ModuleNotFoundError(_INSTALL) from None
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    return figure, np.atleast_2d(figure.subplots(rows, columns, squeeze=False))


def plot_runs(runs: Sequence[Run]) -> Figure:
    """Lagrangian radii (log scale), |relative energy error| and the numbers of stars,
    bound systems and multiples against time; each run in its own colour."""
    if not runs:
        raise InvalidArgumentError("plot: no run given")
    figure, axes = _figure(2, 2, RUN_SIZE)
    from matplotlib import colormaps  # _figure has found matplotlib

    radii, energy, stars, multiples = axes.ravel()
    colours = [f"C{index % 10}" for index in range(len(runs))]
    for run, colour in zip(runs, colours):
        series = run.timeseries()
        time = series.times
        if "r_lagr" in series:
            lagrangian = np.atleast_2d(series["r_lagr"].T).T
            named = len(runs) == 1 and lagrangian.shape[1] == len(R_LAGR_FRACTIONS)  # one run: a line per fraction
            for component in range(lagrangian.shape[1]):
                if named:
                    radii.plot(time, lagrangian[:, component], lw=1.2, label=r_lagr_label(component),
                               color=colormaps["viridis"](component / (lagrangian.shape[1] - 1)))
                else:
                    radii.plot(time, lagrangian[:, component], color=colour, lw=1,
                               alpha=0.35 + 0.65 * (component + 1) / lagrangian.shape[1],
                               label=run.name if component == lagrangian.shape[1] - 1 else None)
        if "energy_error" in series:
            error = np.abs(series["energy_error"])
            shown = error > 0
            energy.plot(time[shown], error[shown], "o-", color=colour, ms=3, lw=1, label=run.name)
        for key, style in (("n_stars", "-"), ("n_bound", "--")):
            if key in series:
                stars.plot(time, series[key], style, color=colour, lw=1.2,
                           label=f"{run.name}: {key.removeprefix('n_')}")
        if "n_multiples" in series:
            multiples.plot(time, series["n_multiples"], "s-", color=colour, ms=3, lw=1, label=run.name)
    radii.set(yscale="log", xlabel="time (N-body units)", ylabel="Lagrangian radius",
              title="kira's r_lagr: most massive stars, m/M = 0.005 to 0.9")
    energy.set(yscale="log", xlabel="time (N-body units)", ylabel="|E - E0 - booked| / |E0|",
               title="Energy error (kira's de: escapers' energy booked apart)")
    stars.set(xlabel="time (N-body units)", ylabel="count", title="Stars, and systems bound to the cluster")
    multiples.set(xlabel="time (N-body units)", ylabel="count", title="Binaries and larger multiples")
    for panel in axes.ravel():
        panel.grid(alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            many = len(panel.get_legend_handles_labels()[0]) > 4
            panel.legend(fontsize="x-small" if many else "small", ncol=3 if many else 1)
    return figure


def _multiple_members(story: Story) -> set[str]:
    """The ids (``i``, else ``name``) of the leaf stars in top-level nodes that have children."""
    members: set[str] = set()
    stack = [child for child in story.particles if child.particles]
    while stack:
        node = stack.pop()
        if node.particles:
            stack.extend(node.particles)
        else:
            members.add(node.get("i") or node.get("name") or "")
    return members


def plot_snapshot(item: Snapshot) -> Figure:
    """The stars of one snapshot in x-y and x-z, point size by mass, members of
    binaries and larger multiples marked."""
    stars = item.particles()
    if stars.size == 0:
        raise InvalidArgumentError(f"snapshot #{item.seq} holds no stars to plot")
    members = _multiple_members(item.story())
    in_multiple = np.isin(stars["id"].astype(str), sorted(members))
    figure, axes = _figure(1, 2, SNAPSHOT_SIZE)
    size = 4 + 60 * stars["mass"] / np.nanmax(stars["mass"])
    for panel, (second, label) in zip(axes.ravel(), ((1, "y"), (2, "z"))):
        single = ~in_multiple
        panel.scatter(stars["pos"][single, 0], stars["pos"][single, second], s=size[single], c="C0", alpha=0.6,
                      linewidths=0, label=f"single stars ({int(single.sum())})")
        if in_multiple.any():
            panel.scatter(stars["pos"][in_multiple, 0], stars["pos"][in_multiple, second], s=size[in_multiple] + 20,
                          facecolors="none", edgecolors="C3", linewidths=1.2,
                          label=f"in binaries and multiples ({int(in_multiple.sum())})")
        panel.set(xlabel="x", ylabel=label, aspect="equal", title=f"x-{label}")
        panel.grid(alpha=0.3)
        panel.legend(fontsize="small", loc="upper right")
    time = "no time" if item.time is None else f"t = {item.time:g}"
    figure.suptitle(f"{item.run.name} snapshot #{item.seq}, {time}, {stars.size} stars")
    return figure


ENSEMBLE_KEYS = ("kira_rhalf", "n_bound", "energy_error")
BAND = (16.0, 84.0)  # the percentiles of a group's band: the middle 68%, one sigma of a normal spread


def ensemble_groups(store: Store, where: str | None = None, by: str | None = None) -> dict[str, list[str]]:
    """The names of the runs matching ``where`` by group: ``by = value`` for each value of
    the ``store.frame`` column ``by``, or one group, ``every run``, without it.  A filter
    that matches no run, or a column the runs lack, is an ``InvalidArgumentError``."""
    frame = store.frame(where)
    if not frame.rows:
        raise InvalidArgumentError(f"plot: no run matches {where!r}" if where else "plot: the store holds no run")
    if by is None:
        return {"every run": sorted(frame["run"].tolist())}
    if by not in frame:
        known = ", ".join(name for name in frame if "." in name)
        raise InvalidArgumentError(f"plot --by: no column {by!r} among the runs; they have {known}")
    groups: dict[str, list[str]] = {}
    for name, value in zip(frame["run"].tolist(), frame[by].tolist()):
        groups.setdefault(f"{by} = {value}", []).append(name)
    return groups


def ensemble_bands(store: Store, keys: Sequence[str] = ENSEMBLE_KEYS, where: str | None = None,
                   by: str | None = None) -> dict[str, dict[str, tuple[np.ndarray, ...]]]:
    """For each column of ``keys`` (``key`` or ``key[i]``) and each group of the runs
    matching ``where`` (by the value of the ``store.frame`` column ``by``: a parameter
    such as ``makeking.w`` or a tag such as ``tag.ensemble``; one group without it), the
    group's times, median, 16th and 84th percentiles and run count at each time, over
    the runs with a value there.  Group labels read ``by = value (N runs)``."""
    groups = ensemble_groups(store, where, by)  # no run at all is said as such, before any column is missing
    series = store.timeseries(keys, where)
    columns = {key: key if key in series else f"{key}[0]" for key in keys}  # a vector's first component
    missing = [key for key, column in columns.items() if column not in series]
    if missing:
        raise InvalidArgumentError(f"plot: no column {missing[0]!r}; the observables give {', '.join(series)}")
    out: dict[str, dict[str, tuple[np.ndarray, ...]]] = {}
    for key, column in columns.items():
        values, times, runs = series[column], series["time"], series["run"]
        out[key] = {}
        for label, members in sorted(groups.items()):
            chosen = np.isin(runs, members) & ~np.isnan(values) & ~np.isnan(times)
            grid = np.unique(times[chosen])
            at = [values[chosen & (times == time)] for time in grid]
            low, high = (np.array([np.percentile(found, q) for found in at]) for q in BAND)
            out[key][f"{label} ({len(members)} runs)"] = (grid, np.array([np.median(found) for found in at]), low, high,
                                                         np.array([found.size for found in at]))
    return out


def plot_ensemble(store: Store, keys: Sequence[str] = ENSEMBLE_KEYS, where: str | None = None,
                  by: str | None = None) -> Figure:
    """One panel per observable of ``keys`` against time: each group's median (a line)
    and 16-84% band (shaded) across its runs (see ``ensemble_bands``)."""
    bands = ensemble_bands(store, keys, where, by)
    figure, axes = _figure(1, len(keys), (5.0 * len(keys), 4.5))
    for panel, (key, groups) in zip(axes.ravel(), bands.items()):
        for index, (label, (time, median, low, high, _)) in enumerate(groups.items()):
            colour = f"C{index % 10}"
            panel.fill_between(time, low, high, color=colour, alpha=0.25, lw=0)
            panel.plot(time, median, "-", color=colour, lw=1.5, label=label)
        meaning = f" ({r_lagr_label(int(key[7:-1]))} of the massive stars)" if key.startswith("r_lagr[") else ""
        panel.set(xlabel="time (N-body units)", ylabel=key, title=f"{key}{meaning}: median and 16-84% of the runs")
        panel.grid(alpha=0.3)
        panel.legend(fontsize="small")
    return figure


def image_path(out: str | os.PathLike) -> str:
    """The file a figure written to ``out`` lands in, as matplotlib names it: ``.png`` added
    to a name without a suffix.  A suffix that names no format matplotlib writes is an
    ``InvalidArgumentError``, so that nothing is drawn for a file that cannot be written."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ModuleNotFoundError:
        raise ModuleNotFoundError(_INSTALL) from None
    name = os.fspath(out)
    suffix = os.path.splitext(name)[1]
    if not suffix:
        return f"{name}.png"
    if suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
        raise InvalidArgumentError(f"plot: {name!r} names no image format: end it in .png, .pdf or .svg")
    return name


def save(figure: Figure, out: str | os.PathLike | BinaryIO) -> str:
    """Write ``figure`` to ``out``: a file in the format its suffix names (``image_path``),
    or a binary stream, as PNG; returns the file's name ("-" for a stream)."""
    if isinstance(out, (str, os.PathLike)):
        path = image_path(out)
        drawn = io.BytesIO()  # then put whole: a full disk leaves no half-written image
        figure.savefig(drawn, format=os.path.splitext(path)[1][1:].lower(), dpi=DPI)
        with writing_to(path):
            PosixStorage(Path(path).parent).put(Path(path).name, drawn.getvalue())
        return path
    with writing_to(out):
        figure.savefig(out, format="png", dpi=DPI)
    return "-"


def plot(store: Store, run: str | None, out: str | os.PathLike | BinaryIO, snapshot: int | None = None,
         compare: Sequence[str] = (), where: str | None = None, by: str | None = None,
         keys: Sequence[str] = ()) -> str:
    """``snapstore plot``: the run figure of ``run`` and the ``compare`` runs, or with
    ``snapshot`` the stars of that snapshot number, or without a run the ensemble figure
    of the runs matching ``where`` grouped ``by`` a column; written to ``out`` (see ``save``)."""
    if isinstance(out, (str, os.PathLike)):
        image_path(out)  # a name no image can have is refused before anything is read or drawn
    if run is None:
        if snapshot is not None or compare:
            raise InvalidArgumentError("plot: --snapshot and --compare draw a run: name one")
        return save(plot_ensemble(store, tuple(keys) or ENSEMBLE_KEYS, where, by), out)
    if where is not None or by is not None or keys:
        raise InvalidArgumentError("plot: --where, --by and --key draw an ensemble: leave out the run name")
    if snapshot is not None:
        if compare:
            raise InvalidArgumentError("plot: --snapshot draws one run; leave out --compare")
        found = [item for item in store.run(run).snapshots() if item.seq == snapshot]
        if not found:
            raise InvalidArgumentError(f"run {run!r} has no snapshot #{snapshot}")
        return save(plot_snapshot(found[0]), out)
    return save(plot_runs([store.run(name) for name in (run, *compare)]), out)
