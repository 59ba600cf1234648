"""Pools of spawned processes (``ingest --jobs``, ``verify``) that Ctrl-C stops cleanly.

Ctrl-C in a terminal reaches the whole process group.  A child interrupted while it
starts prints a traceback of its imports, and one interrupted while it waits for work
dies, breaking the pool.  So the children start with Ctrl-C ignored (an ignored signal
stays ignored across exec), and once ready take it only while they do a piece of work
(``busy``), which then stops as it would in the parent.

A spawned child also runs the parent's main script again, as ``multiprocessing`` does to
find what the parent defined there; a user's script without an ``if __name__ ==
"__main__"`` guard then starts its own pool from each child and breaks.  The work sent
here is snapstore's own, so the children are started without the script
(``starting_children``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_busy = False  # in a child: whether it is doing a piece of work, which Ctrl-C stops
_interrupted = False  # in a child: whether Ctrl-C has reached it since it was ready
# Spawn, not fork: a forked child would share this process's open database connections
_CONTEXT = multiprocessing.get_context("spawn")


def pool(workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each running ``initializer(*initargs)`` once
    ready.  Submit work inside ``starting_children``: the children start then."""
    return ProcessPoolExecutor(workers, mp_context=_CONTEXT, initializer=_ready, initargs=(initializer, initargs))


def event() -> Any:
    """An event the pool's children can be given (``initargs``) and read."""
    return _CONTEXT.Event()


@contextlib.contextmanager
def starting_children() -> Iterator[None]:
    """Children started inside ignore Ctrl-C until they are ready; so does this process,
    for as long as it takes to start them.  Only the main thread may set a handler: in
    another, nothing is changed.  The children do not run the caller's main script again."""
    with _without_main_script():
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)  # None: set outside Python


@contextlib.contextmanager
def _without_main_script() -> Iterator[None]:
    """``__main__`` seen by ``multiprocessing`` as a module of no file: a child spawned
    meanwhile is told of no script to run before its work.  A main of neither file nor
    spec (a notebook's, an interactive session's) is left alone: no child would run it."""
    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


@contextlib.contextmanager
def busy() -> Iterator[None]:
    """In a child: Ctrl-C raises KeyboardInterrupt inside, and is ignored outside."""
    global _busy
    try:
        _busy = True
        yield
    finally:
        _busy = False


def interrupted() -> bool:
    """In a child: whether Ctrl-C has reached it since it was ready.  It may do so before
    the parent has told its children to stop: a child whose work it stopped must not take
    the next piece of work from the queue meanwhile."""
    return _interrupted


def _ready(initializer: Callable[..., None], initargs: tuple) -> None:
    initializer(*initargs)
    signal.signal(signal.SIGINT, _interrupt_when_busy)


def _interrupt_when_busy(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    if _busy:
        raise KeyboardInterrupt
