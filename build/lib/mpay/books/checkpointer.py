"""WAL checkpoints of one SQLite database on a thread and connection of their own.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back
into the database file, with an fsync of each file (``synchronous=NORMAL``). SQLite runs it
by default inside the commit that fills the WAL past ``wal_autocheckpoint`` pages, so that
one commit of a simulation's step takes tens of milliseconds instead of tens of
microseconds, on the event loop's thread (about 1 % of an rsa2048 run of 1000 or 10,000
transactions). SQLite's documentation suggests the alternative used here
(https://sqlite.org/wal.html#automatic_checkpoint): the writer asks, every so many
commits, and a thread with its own connection runs a ``PASSIVE`` checkpoint, which never
blocks the writer nor waits for it.

The writer keeps its own automatic checkpoint. It is the backstop, should this thread fall
behind or fail, and it is also what starts the WAL over from its beginning: SQLite does that
only in a write transaction that began when every frame was already copied, which in a
simulation, whose writer is in a transaction most of the time, happens right after the
writer's own checkpoint. That one now finds nearly every frame copied: it copies the last
few and syncs, a few milliseconds instead of tens (measured in docs/performance.md).

Durability is unchanged: a commit is in the WAL either way, and a checkpoint only copies
it, with the same fsyncs wherever it runs. What the thread did is counted
(:attr:`WalCheckpointer.stats`), its CPU time too, so a benchmark can say how much work
left the writer's thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass

#: commits between two requests for a checkpoint (the payment center writes about six
#: pages per commit, so about 3,000 WAL frames, under the writer's own backstop of 10,000)
CHECKPOINT_EVERY_COMMITS = 500


@dataclass
class CheckpointStats:
    """What the checkpoint thread has done so far."""

    checkpoints: int = 0
    wall_s: float = 0.0
    #: CPU time of the checkpoint thread (``time.thread_time``), the rest was waiting on I/O
    cpu_s: float = 0.0
    #: the first error the thread met; it stops then, and the writer's own checkpoints go on
    error: str | None = None


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` when asked, from its own thread.

    :meth:`committed` is called by the writer after each commit (an integer count; every
    ``every_commits`` it wakes the thread); :meth:`close` stops the thread and closes its
    connection. Use one per database file."""

    def __init__(self, path: str, every_commits: int = CHECKPOINT_EVERY_COMMITS) -> None:
        if every_commits < 1:
            raise ValueError(f"every_commits must be positive, got {every_commits!r}")
        self.path = path
        self.every_commits = every_commits
        self.stats = CheckpointStats()
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        # opened here so that a database that cannot be opened fails the caller, not the thread
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint:{path}", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """The writer committed a transaction; every ``every_commits`` wakes the thread."""
        self._commits += 1
        if self._commits >= self.every_commits:
            self._commits = 0
            self._wake.set()

    def _run(self) -> None:
        stats = self.stats
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                stats.error = f"{type(exc).__name__}: {exc}"
                return
            stats.wall_s += time.perf_counter() - wall0
            stats.cpu_s += time.thread_time() - cpu0
            stats.checkpoints += 1  # last: a reader that sees the count sees its times too

    def close(self) -> None:
        """Stop the thread (after a checkpoint it is running) and close its connection."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._conn.close()
