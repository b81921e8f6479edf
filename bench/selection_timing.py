"""How long one selection takes at scale: 30,000 proposals with the counters 2,000,000
participants would leave, by the algorithm alone and by `next_proposals_for` with its reads."""

from __future__ import annotations

import gc
import math
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import insert, text
from sqlmodel import SQLModel

from bench.databases import empty_schema
from bench.pools import PoolShape
from bench.simulation import SEQUENCE
from core.models import Consultation
from core.scoring import contender_scores
from core.sequencing import (
    ALGORITHMS,
    FRESH_BELOW,
    READS_CONTENDERS,
    Candidate,
    SequenceBuilder,
    next_proposals_for,
)
from core.storage import create_engine, migrate, session_factory
from core.voting import COUNTED_KEYS

WARM_UP = 5  # untimed selections before each timed series


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SCALE_WORDS = (  # noqa: SIM905 - a sentence's worth of words reads better as one string
    "fund train open build share visit care pay help teach listen cook drive repair welcome "
    "homes nurses canteens buses libraries parks benches gardens clinics phones meals streets "
    "neighbours volunteers students families carers doctors shops halls villages towns every "
    "week weekend night morning free local public shared small rural better more elders"
).split()


_Row = tuple[int, int, float, str, dict[str, int]]


def scale_rows(proposals: int, seed: int) -> list[_Row]:
    """Proposals with counters as 2,000,000 participants voting 12 times each would leave
    them, and texts of a proposal's usual length: (id, author, created, text, counts)."""
    rng = random.Random(seed)
    rows: list[_Row] = []
    for p in range(1, proposals + 1):
        n = rng.randint(0, 1600)
        a = rng.randint(0, n)
        d = rng.randint(0, n - a)
        counts = {
            "agree": a,
            "disagree": d,
            "neutral": n - a - d,
            "likeIt": a // 3,
            "noWay": d // 3,
        }
        text = f"We should {' '.join(rng.choices(SCALE_WORDS, k=rng.randint(6, 16)))}"
        rows.append((p, p, float(p), text, counts))
    return rows


def _votes(counts: dict[str, int]) -> int:
    return counts["agree"] + counts["disagree"] + counts["neutral"]


def _scores(counts: dict[str, int]) -> tuple[float, float]:
    """The contender scores the database keeps for these counts (core.scoring)."""
    return contender_scores(counts["agree"], counts["disagree"], counts["neutral"], _votes(counts))


HISTORY = 200  # votes of the timed participant: 16 sequences of 12, and a few more
# Other participants with as many votes each, so that the vote table is not theirs alone: a
# full run (`Plan.scale_other_voters`) puts 2,000,000 votes beside the timed participant's.
OTHER_VOTERS = 100
_CHUNK = 50_000  # votes per INSERT: the rows of a large history are built a chunk at a time


def _histories(
    rows: Sequence[_Row], rng: random.Random, other_voters: int
) -> Iterator[tuple[int, list[int]]]:
    """The proposals each participant voted on, the timed one (1) first: a quarter of its
    HISTORY among the oldest proposals that still need votes (shown first to everyone), the
    rest among the tested ones; the others' among the tested ones (their counters allow it)."""
    fresh = [row[0] for row in rows if _votes(row[4]) < FRESH_BELOW][: HISTORY // 4]
    tested = [row[0] for row in rows if _votes(row[4]) >= FRESH_BELOW]
    votes = min(HISTORY, len(tested))  # a small test pool: as many as there are
    yield 1, fresh + rng.sample(tested, max(0, votes - len(fresh)))
    for person in range(2, other_voters + 2):
        yield person, rng.sample(tested, votes)


async def database_timing(
    algorithms: Sequence[str],
    rows: Sequence[_Row],
    seed: int,
    calls: int,
    database_url: str | None = None,
    chosen: dict[str, list[list[int]]] | None = None,
    other_voters: int = OTHER_VOTERS,
) -> dict[str, tuple[float, float]]:
    """Median and p99 ms of `core.sequencing.next_proposals_for` itself, database reads
    included, on a database holding `rows` as accepted proposals with their counters (as
    `core.voting` keeps them) and a participant who already voted HISTORY times: an SQLite
    file of its own, or the PostgreSQL database `database_url` (its tables are replaced).
    `chosen`, if given, receives each algorithm's cards, call by call (ids). `other_voters`
    participants have voted HISTORY times each too.

    The history is what makes the exclusion of voted proposals cost what it costs in a real
    consultation: it holds the oldest proposals that still need votes (every algorithm shows
    those first, so a returning participant voted on them) and tested ones spread over the
    shuffle index; other participants' votes sit in the same table and indexes.
    """
    tables = SQLModel.metadata.tables
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        engine = create_engine(database_url or f"sqlite:///{Path(scratch) / 'scale.sqlite3'}")
        await empty_schema(engine)
        await migrate(engine)
        consultation = Consultation(
            id=1,
            slug="scale",
            status="open",
            default_locale="en",
            locales=["en"],
            question={"en": "How can we better care for our elders?"},
            created_at=now,
            updated_at=now,
        )
        shuffle = random.Random(seed)
        async with engine.begin() as connection:
            await connection.execute(
                insert(tables["consultation"]).values(consultation.model_dump())
            )
            await connection.execute(
                insert(tables["participant"]),
                [
                    {"id": person, "step": "card", "state": {}, "created_at": now}
                    for person in range(1, other_voters + 2)
                ],
            )
            await connection.execute(
                insert(tables["proposal"]),
                [
                    {
                        "id": pid,
                        "consultation_id": 1,
                        "ref": f"s{pid}",
                        "locale": "en",
                        "text": body,
                        "status": "accepted",
                        "vote_count": _votes(counts),
                        "agree_count": counts["agree"],
                        "disagree_count": counts["disagree"],
                        "neutral_count": counts["neutral"],
                        **dict(zip(("agree_score", "split_score"), _scores(counts), strict=True)),
                        "shuffle": shuffle.random(),
                        "created_at": datetime.fromtimestamp(created, UTC),
                        "updated_at": now,
                    }
                    for pid, _, created, body, counts in rows
                ],
            )
            await connection.execute(
                insert(tables["tally"]),
                [
                    {"proposal_id": row[0], "key": key, "trusted": trusted, "count": count}
                    for row in rows
                    for key in COUNTED_KEYS
                    for trusted, count in ((True, row[4].get(key, 0)), (False, 0))
                ],
            )
            votes = (
                {
                    "participant_id": person,
                    "proposal_id": pid,
                    "key": "agree",
                    "trusted": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for person, history in _histories(rows, shuffle, other_voters)
                for pid in history
            )
            while chunk := list(islice(votes, _CHUNK)):
                await connection.execute(insert(tables["vote"]), chunk)
        if engine.dialect.name == "postgresql":  # what autovacuum does after such a load:
            # statistics for the planner, and pages marked all-visible, without which an
            # index-only scan still reads every row it finds in the table
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("VACUUM ANALYZE"))
        sessions = session_factory(engine)
        rng = random.Random(seed)
        timings: dict[str, tuple[float, float]] = {}
        gc.collect()  # as in scale_timing: the benchmark's own rows are not the selection's
        gc.freeze()
        for algorithm in algorithms:
            settings = {"sequencing": algorithm, "sequence_size": SEQUENCE}
            current = consultation.model_copy(update={"settings": settings})
            times = []
            for call in range(WARM_UP + calls):  # the first calls read the file into memory
                async with sessions() as session, session.begin():
                    # A selection runs in a turn that has read the participant already: the
                    # connection's checkout (with its liveness ping on PostgreSQL) and BEGIN
                    # (sent with the first statement on PostgreSQL) are the turn's.
                    await (await session.connection()).exec_driver_sql("SELECT 1")
                    started = time.perf_counter()
                    cards = await next_proposals_for(session, 1, current, "en", SEQUENCE, rng=rng)
                    if call >= WARM_UP:
                        times.append((time.perf_counter() - started) * 1000)
                if chosen is not None:
                    chosen.setdefault(algorithm, []).append([card.id for card in cards])
            timings[algorithm] = _quantiles(times)
        gc.unfreeze()
        await engine.dispose()
    return timings


def _quantiles(times: Sequence[float]) -> tuple[float, float]:
    return statistics.median(times), percentile(times, 0.99)


def scale_timing(
    algorithm: str, rows: Sequence[_Row], seed: int, calls: int
) -> tuple[float, float]:
    """Median and p99 ms of one selection of 12 cards by the algorithm alone.

    As in `core.sequencing.next_proposals_for`, the algorithm sees a bounded pool: the oldest
    proposals with fewer than FRESH_BELOW votes, the contenders of each ranking if it reads
    them, and a sample of the others from a random point of the shuffle index (emulated here by
    a random sample), in production's `PoolShape`, as new `Candidate`s each call, so the hard
    rules' text comparisons are paid for as they are in a sequence. `database_timing` adds the
    reads.
    """
    rng = random.Random(seed)
    shape = PoolShape()  # production's
    tested = [row for row in rows if _votes(row[4]) >= FRESH_BELOW]
    first = [row for row in rows if _votes(row[4]) < FRESH_BELOW][: shape.fresh_limit]
    if algorithm in READS_CONTENDERS:
        scored = [(_scores(row[4]), row) for row in tested]
        contenders = (shape.consensus_contenders, shape.controversy_contenders)
        for which, limit in enumerate(contenders):  # in the score index's order
            ranked = sorted(scored, key=lambda s: (s[0][which], _votes(s[1][4]), s[1][0]))
            first += [r for _, r in ranked[::-1][:limit]]
    # The rows stand for the database: a full collection of them (50 ms with 30,000) is the
    # benchmark's own garbage, not the selection's, and must not land in a timed call.
    gc.collect()
    gc.freeze()
    times = []
    for call in range(WARM_UP + calls):
        drawn = rng.sample(tested, min(shape.sample_limit, len(tested)))
        sample = list({row[0]: row for row in [*first, *drawn]}.values())
        started = time.perf_counter()
        pool = [Candidate(*row, prefix="We should") for row in sample]
        ALGORITHMS[algorithm](SequenceBuilder(SEQUENCE), pool, rng)
        if call >= WARM_UP:
            times.append((time.perf_counter() - started) * 1000)
    gc.unfreeze()
    return _quantiles(times)
