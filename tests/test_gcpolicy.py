"""The collector's settings during bulk work: restored afterwards, and a freeze made by someone
else (the web view's snapshot keeper) left in place."""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Iterator

import pytest

from pmsync.gcpolicy import (
    BULK_THRESHOLDS,
    bulk_allocation,
    run_on_system_malloc,
    system_malloc_argv,
)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_bulk_allocation_restores_the_thresholds_and_unfreezes_what_it_froze() -> None:
    before = gc.get_threshold()
    with bulk_allocation(one_arena=False):
        assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_freeze_count() > 0
        with bulk_allocation(one_arena=False):  # nested: the outermost block restores
            pass
        assert gc.get_threshold() == BULK_THRESHOLDS
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("unfrozen")
def test_a_freeze_made_before_bulk_work_stays() -> None:
    gc.freeze()  # as the web view's keeper does after building a snapshot
    frozen = gc.get_freeze_count()
    assert frozen > 0
    with bulk_allocation(one_arena=False):
        pass
    assert gc.get_freeze_count() >= frozen


def test_a_daemon_runs_again_on_the_system_allocator_unless_one_was_chosen() -> None:
    argv = ["/venv/bin/python", "/venv/bin/pmsync", "-c", "x.toml", "run"]
    again = system_malloc_argv({}, argv, "/usr/bin/python3.11", glibc=True)
    assert again == ["/usr/bin/python3.11", "/venv/bin/pmsync", "-c", "x.toml", "run"]
    # Already so (the executed command), chosen by someone, or no glibc to trim: nothing.
    assert system_malloc_argv({"PYTHONMALLOC": "malloc"}, argv, "/py", glibc=True) is None
    assert system_malloc_argv({"PYTHONMALLOC": "pymalloc"}, argv, "/py", glibc=True) is None
    assert system_malloc_argv({}, argv, "/py", glibc=False) is None


def test_running_on_the_system_allocator_sets_it_and_executes_the_same_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONMALLOC", "")  # so that teardown takes it away again
    monkeypatch.delenv("PYTHONMALLOC")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pmsync.app.cli", "run"])
    executed: list[tuple[str, list[str]]] = []
    run_on_system_malloc(lambda path, argv: executed.append((path, argv)))
    assert executed == [(sys.executable, [sys.executable, "-m", "pmsync.app.cli", "run"])]
    assert os.environ["PYTHONMALLOC"] == "malloc"
    run_on_system_malloc(lambda path, argv: executed.append((path, argv)))
    assert len(executed) == 1  # the executed command does not do it again


def test_a_reload_signal_during_the_exec_is_ignored_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONMALLOC", "")
    monkeypatch.delenv("PYTHONMALLOC")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pmsync.app.cli", "run"])
    at_exec: list[object] = []
    before = signal.getsignal(signal.SIGHUP)
    run_on_system_malloc(lambda _path, _argv: at_exec.append(signal.getsignal(signal.SIGHUP)))
    # Ignored when the new program starts (an ignored signal stays so across exec) ...
    assert at_exec == [signal.SIG_IGN]
    # ... and put back when no exec happened.
    assert signal.getsignal(signal.SIGHUP) is before


def test_a_daemon_that_cannot_execute_itself_runs_on_as_it_is(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTHONMALLOC", "")
    monkeypatch.delenv("PYTHONMALLOC")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pmsync.app.cli", "run"])
    before = signal.getsignal(signal.SIGHUP)

    def refused(_path: str, _argv: list[str]) -> None:
        raise PermissionError(1, "Operation not permitted")

    run_on_system_malloc(refused)  # no exception: the daemon starts on Python's allocator
    assert "PYTHONMALLOC" not in os.environ  # its children are not told otherwise either
    assert signal.getsignal(signal.SIGHUP) is before
    assert "staying on Python's allocator" in capfd.readouterr().err
