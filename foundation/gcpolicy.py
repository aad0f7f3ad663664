"""Garbage-collector settings for bulk work: a sync allocates millions of short-lived objects.

A page of a thousand records is some forty thousand dicts and lists that live until the page is
stored. With the default thresholds the collector runs every 700 allocations and, each time the
young objects survive, walks them again, and its full collections walk every object the
imports created (SQLAlchemy, pydantic): 20-25% of the CPU of parsing and mapping a page. Those
records hold no reference cycles, so reference counting frees them; the collector only has to
run now and then.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 100)
M_ARENA_MAX = -8  # glibc's mallopt parameter
ALLOCATOR_ENV = "PYTHONMALLOC"


def system_malloc_argv(
    environ: Mapping[str, str], orig_argv: Sequence[str], executable: str, *, glibc: bool
) -> list[str] | None:
    """The command line that runs this same command again on the C library's allocator, or
    None when it already does, when someone chose an allocator (`PYTHONMALLOC` set: theirs
    is kept, `PYTHONMALLOC=pymalloc` keeps Python's), or without glibc (no `malloc_trim`)."""
    if not glibc or ALLOCATOR_ENV in environ or not orig_argv or not executable:
        return None
    return [executable, *orig_argv[1:]]


def run_on_system_malloc(
    execv: Callable[[str, list[str]], object] = os.execv,
) -> None:
    """Execute this command again, in this process, with `PYTHONMALLOC=malloc`: for a process
    that keeps running (`pmsync run`) and must give back the peak of its first sync and full
    derivations.

    Python's own allocator (pymalloc) takes memory from the system in 1 MiB arenas and gives an
    arena back only when every object in it is gone. A daemon's peak fills a few hundred of
    them, and the few objects that outlive it (caches, connection state, the next cycles'
    derivations) are scattered over nearly all: at 20k tickets an idle daemon had 288 arenas
    alive holding 44 MiB of objects, 226 MiB of them empty pools (RSS 311-392 MiB, 89 MiB of
    it the imports). glibc's malloc hands back any free page (`malloc_trim`), so the same
    objects cost their own size (RSS 176-244 MiB before the kept derivations were slimmed).
    Small allocations cost a little more CPU there, which an idle daemon hardly does.

    The variable must be set before the interpreter starts, hence the exec: same process id
    (systemd's notify protocol and PID file hold), same arguments and environment. Nothing
    happens when `system_malloc_argv` says so, so the executed command does not do it again."""
    glibc = _has_malloc_trim()
    argv = system_malloc_argv(os.environ, sys.orig_argv, sys.executable, glibc=glibc)
    if argv is None:
        return
    os.environ[ALLOCATOR_ENV] = "malloc"
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # An ignored signal stays ignored across exec: a SIGHUP (reload) arriving before the new
    # program installs its handlers would otherwise end it. The configuration is read after
    # the exec anyway, so such a reload has nothing left to do.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        execv(argv[0], argv)
    except OSError as exc:  # no exec (the interpreter gone, a sandbox refusing it): carry on
        del os.environ[ALLOCATOR_ENV]
        os.write(2, f"pmsync: staying on Python's allocator, cannot execute: {exc}\n".encode())
    finally:  # only reached when the exec did not happen
        signal.signal(signal.SIGHUP, previous)


def _has_malloc_trim() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim")
    except OSError:
        return False


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc keeps them otherwise); cheap, and
    nothing happens without glibc. On the system allocator, what a derivation freed stays
    resident until this is called."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def one_malloc_arena() -> None:
    """Have glibc serve every thread from one malloc arena. A sync parses the next page in a
    read-ahead thread and frees it in the main one: with an arena per thread, each keeps its
    own high-water mark of page-sized strings, 6 MiB more peak RSS in a 100k-ticket sync (the
    threads never allocate at the same moment, so sharing one costs no contention that shows).
    `pmsync run` sets it before its workers start: each worker thread derives and plans in
    turn, and with an arena each, four arenas held 115 MiB between them at 20k tickets idle.
    Nothing happens without glibc."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


_depth = 0  # bulk_allocation blocks open (nested, or in several threads)
_depth_lock = threading.Lock()
_previous: tuple[int, int, int] = (700, 10, 10)
_was_frozen = False  # someone else froze objects first (the web view's snapshot keeper)


@contextmanager
def bulk_allocation(*, one_arena: bool = True) -> Iterator[None]:
    """Freeze what exists now (modules, configuration, a daemon's caches) out of the
    collector's sight and collect the young generation rarely; restored (and unfrozen, unless
    something was frozen before, such as the web view's snapshot) when the outermost block
    ends. Threads started inside share one malloc arena
    (`one_malloc_arena`), which stays so, unless `one_arena` is False. A derivation in a
    process that holds millions of objects spent half its time in full collections walking
    them (issue 14)."""
    global _depth, _previous, _was_frozen  # noqa: PLW0603 - the collector's settings are process-wide
    if one_arena:
        one_malloc_arena()
    with _depth_lock:
        if _depth == 0:
            _previous = gc.get_threshold()
            _was_frozen = gc.get_freeze_count() > 0
            gc.freeze()
            gc.set_threshold(*BULK_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_previous)
                if not _was_frozen:  # a freeze made by someone else stays theirs to undo
                    gc.unfreeze()
