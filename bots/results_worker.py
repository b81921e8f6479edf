"""The results' computation in a process of its own: `python -m bots.results_worker`.

At 10 million votes a consultation's results take some 40 seconds of CPU (reading the votes,
numpy); in `consult serve`'s event loop the participants' webhooks and the console would wait
that long, and a thread would not help (the GIL). So the scheduler's `results-recompute` job
(`bots.scheduler`) picks the consultations due, in the round where it checks its lease, and
hands them to this child: it opens its own engines on the same database, computes each one's
results in a transaction that only reads (no write lock on SQLite, so votes go on being cast)
and stores them in a short transaction of its own (`core.results.recompute`), prints how
many it stored and exits: 0 when every one was stored, 1 when one failed (the others are
stored; why on stderr, which the parent logs).

A child never outlives its parent. Its stdin is a pipe from the parent, and it exits (code 3)
as soon as that pipe closes: the parent was killed, or stopped. A transaction it had open is
then never committed, so no snapshot is half-written, and no orphan computes beside the child
of the process that takes the lease next. The parent terminates its child when it stops or
loses the lease, and starts no second one while one runs (`ResultsProcess`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from bots.settings import Settings
from core.models import Consultation
from core.results.recompute import compute_results as results_of
from core.results.recompute import store_results
from core.storage import create_engine, session_factory

log = logging.getLogger("consult.results")
SOME_FAILED = 1
PARENT_GONE = 3
_LOGGED_TAIL = 4000  # characters of a failed child's stderr put in the parent's log

# --- the child ---------------------------------------------------------------------------------


async def compute_results(
    database_url: str, consultation_ids: Sequence[int], now: datetime
) -> tuple[int, int]:
    """Store the results of each consultation (by id) as computed at `now`; how many were
    stored, and how many failed (logged, the others stored all the same).

    Each is computed in a transaction that only reads (on SQLite, one that holds no write
    lock: the participants' votes go on being written meanwhile), then stored in a short one
    of its own."""
    engine = create_engine(database_url)
    reader = create_engine(database_url, reading=True)
    sessions, reading = session_factory(engine), session_factory(reader)
    stored = failed = 0
    try:
        for consultation_id in consultation_ids:
            try:
                async with reading() as session, session.begin():
                    consultation = await session.get(Consultation, consultation_id)
                    if consultation is None:  # deleted since it was found due
                        continue
                    computed = await results_of(session, consultation, now)
                async with sessions() as session, session.begin():
                    consultation = await session.get(Consultation, consultation_id)
                    if consultation is None:
                        continue
                    await store_results(session, consultation, computed, now)
                stored += 1
            except Exception:
                log.exception("results of consultation %d could not be computed", consultation_id)
                failed += 1
    finally:
        await engine.dispose()
        await reader.dispose()
    return stored, failed


def _exit_when_the_parent_goes() -> None:
    """Read stdin (a pipe from the parent) to its end, then end this process at once."""
    # The file descriptor, not `sys.stdin`: its buffer's lock would hold up the interpreter's
    # shutdown at a normal end.
    while os.read(sys.stdin.fileno(), 1024):
        pass
    os._exit(PARENT_GONE)  # no cleanup: an open transaction is rolled back by the database


def _child_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bots.results_worker",
        description="Compute consultations' results into snapshots (run by the scheduler: "
        "it exits when its stdin closes). The database is CONSULT_DATABASE_URL's.",
    )
    parser.add_argument("--now", type=datetime.fromisoformat, required=True, help="ISO time")
    parser.add_argument("ids", type=int, nargs="+", metavar="CONSULTATION_ID")
    return parser.parse_args()


def main() -> int:
    args = _child_arguments()
    threading.Thread(target=_exit_when_the_parent_goes, daemon=True).start()
    url = Settings().resolved_database_url()
    stored, failed = asyncio.run(compute_results(url, args.ids, args.now))
    print(stored, flush=True)
    return SOME_FAILED if failed else 0


# --- the parent's side -------------------------------------------------------------------------


class ResultsProcess:
    """The scheduler's child computing results: at most one at a time.

    `command` is the program and its first arguments (tests put a gate in front of the real
    worker); `on_exit(code, stored)` is called when a child has ended and been logged
    (`stored` None when it printed no count): tests wait on it instead of on time.
    """

    def __init__(
        self,
        database_url: str,
        *,
        command: Sequence[str] = (sys.executable, "-m", "bots.results_worker"),
        on_exit: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.command = tuple(command)
        self.on_exit = on_exit
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        """Whether a child was started and its end not yet logged."""
        return self._watch is not None and not self._watch.done()

    async def start(self, consultation_ids: Sequence[int], now: datetime) -> None:
        """Start a child computing these consultations' results at `now`, unless one runs."""
        if self.running or not consultation_ids:
            return
        # The database URL goes in the environment, not the arguments: it may hold a
        # password, and any user of the host can list a process's arguments. The child needs
        # none of the other settings' tokens and secrets.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSULT_")}
        env["CONSULT_DATABASE_URL"] = self.database_url
        self._stopping = False
        arguments = ["--now", now.isoformat(), *map(str, consultation_ids)]
        self._process = await asyncio.create_subprocess_exec(
            *self.command,
            *arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        self._watch = asyncio.create_task(self._logged(self._process))

    async def _logged(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None and process.stderr is not None
        # Never `communicate()`: it closes stdin, which tells the child its parent is gone.
        out, err = await asyncio.gather(process.stdout.read(), process.stderr.read())
        code = await process.wait()
        printed = out.decode(errors="replace").strip()
        stored = int(printed) if printed.isdigit() else None
        if code == 0:
            if stored:
                log.info("results of %d consultations computed", stored)
        elif self._stopping:
            log.info("computing results stopped with the scheduler: the next holder computes them")
        else:
            why = err.decode(errors="replace").strip()[-_LOGGED_TAIL:] or "(nothing on stderr)"
            log.error("computing results failed (child exited with %d): %s", code, why)
        if self.on_exit is not None:
            self.on_exit(code, stored)

    async def wait(self) -> None:
        """Until the running child, if any, has ended and been logged."""
        if self._watch is not None:
            await asyncio.shield(self._watch)

    async def stop(self) -> None:
        """End the running child, if any (what it had not committed is lost, and computed
        again by the next round), and wait for it."""
        process = self._process
        if self.running and process is not None and process.returncode is None:
            self._stopping = True
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                process.terminate()
        await self.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    raise SystemExit(main())
