"""Ctrl-C, as a terminal sends it (to the process group) or as a job manager does (to
snapstore alone): every command ends at once in one line, exit 130, and keeps what it
committed; nothing it started goes on without it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

import snapstore
from helpers import roots_of, seed500_or_sample

INTERRUPTED = "snapstore: interrupted; everything committed so far is kept"


def _default_ctrl_c() -> None:
    """In the child: Ctrl-C as a shell's foreground command has it (a background job ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _first_story() -> str:
    return next(roots_of(seed500_or_sample() / "kira.out.gz")).text


def _wait_for_stories(url: str, name: str, count: int) -> None:
    """Until run ``name`` holds ``count`` stories (at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with snapstore.open(url, create=False) as store:
                if len(store.run(name).stories()) >= count:
                    return
        except snapstore.SnapstoreError:
            continue


def test_ctrl_c_during_an_ingest_ends_it_at_once_says_so_and_keeps_what_was_committed(tmp_path) -> None:
    """Ctrl-C on ``snapstore ingest -``: one line on stderr, exit 130, and the stories read
    before it are stored (a live stream's are committed as they come)."""
    texts = [root.text for root in roots_of(seed500_or_sample() / "kira.out.gz")]
    url = f"sqlite:///{tmp_path / 'a.db'}"
    snapstore_cli = [sys.executable, "-m", "snapstore.cli", "ingest", "-", "--name", "run", "--db", url]
    ingest_ = subprocess.Popen(snapstore_cli, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, preexec_fn=_default_ctrl_c)
    assert ingest_.stdin is not None
    ingest_.stdin.write("".join(texts[:3]))  # then silent, as kira is between snapshots
    ingest_.stdin.flush()
    _wait_for_stories(url, "run", 2)
    ingest_.send_signal(signal.SIGINT)
    try:
        _, err = ingest_.communicate(timeout=30)
    finally:
        ingest_.kill()
    assert ingest_.returncode == 130
    assert err.strip() == INTERRUPTED
    with snapstore.open(url, create=False) as store:
        assert "".join(item.text() for item in store.run("run").stories()) == "".join(texts[:len(
            store.run("run").stories())]) and len(store.run("run").stories()) >= 2


def test_ctrl_c_during_ingest_jobs_stops_the_runs_under_way_and_starts_no_other(tmp_path) -> None:
    """Ctrl-C reaches the parent and its children: the runs under way stop (what they
    committed kept), the runs queued never start, and one line is printed, with no child's
    traceback.  Before, the children went on to the queued runs, and the parent waited for
    all of them: an ensemble's Ctrl-C ingested the rest of the ensemble."""
    text = _first_story()
    fifos = [tmp_path / f"run{index}.out" for index in range(3)]
    for fifo in fifos:
        os.mkfifo(fifo)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    snapstore.open(url).close()
    command = [sys.executable, "-m", "snapstore.cli", "ingest", *map(str, fifos), "--jobs", "2", "--db", url]
    ingest_ = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True, preexec_fn=_default_ctrl_c)
    writers = []
    try:
        for fifo in fifos[:2]:  # opening a fifo to write waits for its reader: both children are ingesting
            writers.append(open(fifo, "w"))  # noqa: SIM115 - closed in finally
            writers[-1].write(text)
            writers[-1].flush()
        time.sleep(1)  # their first story goes in
        os.killpg(ingest_.pid, signal.SIGINT)  # as Ctrl-C in a terminal
        _, err = ingest_.communicate(timeout=30)
    finally:
        for writer in writers:
            writer.close()
        if ingest_.poll() is None:
            os.killpg(ingest_.pid, signal.SIGKILL)
    assert ingest_.returncode == 130 and "Traceback" not in err, err
    assert err.strip() == INTERRUPTED
    with pytest.raises(OSError):  # no reader ever opened the third: its run never started
        os.close(os.open(fifos[2], os.O_WRONLY | os.O_NONBLOCK))
    with snapstore.open(url, create=False) as store:
        assert sorted(run.name for run in store.runs()) == ["run0", "run1"]
        assert all(run.status == "incomplete" for run in store.runs())


@pytest.mark.parametrize("busy", [True, False])
def test_a_child_that_ctrl_c_reached_starts_no_further_run(tmp_path, monkeypatch, busy: bool) -> None:
    """Ctrl-C reaches the children before the parent sets its stop event.  A child whose
    run it stopped (or that was between runs) took the next queued run meanwhile, and
    waited on a stream no one would write: the test above then timed out under load."""
    from snapstore.store import parallel, processes

    stream = tmp_path / "run2.out"
    stream.write_text(_first_story())
    url = f"sqlite:///{tmp_path / 'a.db'}"
    snapstore.open(url).close()
    monkeypatch.setattr(processes, "_interrupted", False)
    monkeypatch.setattr(parallel, "_stop", None)  # as in a child whose parent has not set it yet
    with pytest.raises(KeyboardInterrupt) if busy else contextlib.nullcontext(), processes.busy() if busy \
            else contextlib.nullcontext():
        processes._interrupt_when_busy(signal.SIGINT, None)  # what Ctrl-C calls in a ready child
    outcome = parallel._ingest_one(url, None, str(stream), None, None, {}, True)
    assert outcome.error == "not started: the ingest was interrupted" and outcome.report is None
    with snapstore.open(url, create=False) as store:
        assert store.runs() == []


def test_ctrl_c_to_snapstore_pipe_alone_stops_the_capture_and_then_its_silent_command(tmp_path) -> None:
    """A job manager's SIGINT to snapstore only, while the simulation is silent between
    snapshots: the capture ends (its stories kept, the run saying it was interrupted) and
    the command, whose output now has nowhere to go, is stopped after ``STOP_AFTER``.
    Before, snapstore waited on the closing of the command's pipe until the command ended
    by itself, however long that was."""
    from snapstore.operations import STOP_AFTER

    story = tmp_path / "story.out"
    story.write_text(_first_story())
    command = ["sh", "-c", f"cat {story}; exec sleep 120"]
    url = f"sqlite:///{tmp_path / 'a.db'}"
    pipe = subprocess.Popen([sys.executable, "-m", "snapstore.cli", "pipe", "--name", "live", "--db", url, "--",
                             *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=_default_ctrl_c)
    _wait_for_stories(url, "live", 1)
    interrupted = time.monotonic()
    pipe.send_signal(signal.SIGINT)
    try:
        _, err = pipe.communicate(timeout=STOP_AFTER + 20)
    finally:
        pipe.kill()
    assert pipe.returncode == 130 and err.strip() == INTERRUPTED, err
    assert time.monotonic() - interrupted < STOP_AFTER + 10
    with snapstore.open(url, create=False) as store:
        run = store.run("live")
        assert [item.text() for item in run.stories()] == [story.read_text()] and run.status == "incomplete"
    shown = subprocess.run([sys.executable, "-m", "snapstore.cli", "show", "live", "--db", url], capture_output=True,
                           text=True, cwd=tmp_path).stdout
    assert "stopped on: interrupted (Ctrl-C)" in shown


def _spawned_children(parent: int) -> list[int]:
    """The pool processes ``parent`` has spawned so far (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    spawned = b"spawn_main" in cmdline.read()
            except OSError:
                continue
            if spawned and int(fields[1]) == parent:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("verb", [["verify", "--jobs", "2"], ["ingest", "--jobs", "2"]])
def test_ctrl_c_as_the_pool_s_children_start_prints_one_line_and_no_traceback(tmp_path, verb) -> None:
    """Ctrl-C while ``verify`` or ``ingest --jobs`` starts its processes: a child then is
    still importing, and an interrupted import printed its traceback under the line."""
    if not os.path.isdir("/proc"):
        pytest.skip("finding the pool's processes reads /proc")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    sources = []
    for index in range(8):  # verify checks fewer runs than this in one process
        source = tmp_path / f"run{index}.out"
        source.write_text(_first_story())
        sources.append(str(source))
    with snapstore.open(url) as store:
        for source in sources:
            store.ingest(source)
    command = [sys.executable, "-m", "snapstore.cli", *verb, *(sources if verb[0] == "ingest" else []), "--db", url]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True, preexec_fn=_default_ctrl_c)
    deadline = time.monotonic() + 60
    while not _spawned_children(started.pid) and started.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # into their imports
    os.killpg(started.pid, signal.SIGINT)
    try:
        _, err = started.communicate(timeout=30)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert "Traceback" not in err, err
    assert started.returncode in (0, 130) and err.strip() in ("", INTERRUPTED), err
