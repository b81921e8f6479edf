"""`consult bench flags`: how well the language flag tells languages apart, and what flagging
adds to a submission.

Quality: the hand-written texts of tests/data/language_texts.csv (French and English ones,
some with each other's words, and nine other languages) and, when the shared Polis
conversations are beside the repository, their comments (Seattle's in English, vTaiwan's in
Chinese; CC BY 4.0, The Computational Democracy Project, compdemocracy.org/polis). Each text
is judged in three consultations (French and English, French only, English only): it should
be flagged exactly when its language is none of the consultation's. Precision, recall and the
share of texts in the consultation's languages flagged by mistake, at the thresholds
`core.moderation.language` uses and at others.

Speed: `submit_proposal` (storing the proposal, its counters and its flags, the earlier
proposals it flags included) against `add_proposal` (storing it and its counters, no flags),
each in a transaction of its own, among N pending proposals of one consultation (generated,
by participants of five recruitment sources, over the last week), on an SQLite file and on
PostgreSQL when a server answers. One submission in ten copies an earlier text.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import SQLModel

from bench.databases import bench_database, empty_schema
from bench.selection_timing import percentile
from bench.similarity import generated_proposals
from core.definitions import ConsultationSettings
from core.models import Consultation, Proposal, ProposalStatus
from core.moderation.flags import body_of, text_key
from core.moderation.language import CLEAR, MIN_LETTERS, other_language
from core.proposals import submit_proposal
from core.storage import create_engine, migrate, session_factory
from core.voting import add_proposal

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ROOT / "tests" / "data" / "language_texts.csv"
POLIS = (ROOT.parent / "shared" / "data" / "polis", Path("/work/shared/data/polis"))
CONVERSATIONS = {"15-per-hour-seattle": "en", "vtaiwan.uberx": "zh"}
SETUPS = (("fr", "en"), ("fr",), ("en",))
SWEEP = tuple((clear, letters) for letters in (8, 12) for clear in (0.7, 0.8, 0.9, 0.97))
SOURCES = ("poster", "newsletter", "ad", "school", "partner")
WARM_UP = 20
_CHUNK = 5000


@dataclass(frozen=True)
class Labelled:
    origin: str
    language: str
    text: str


def labelled_texts(polis_dirs: Sequence[Path] = POLIS) -> list[Labelled]:
    """The hand-written texts, and the Polis comments found beside the repository."""
    with TEXTS.open(newline="", encoding="utf-8") as source:
        found = [
            Labelled("written", row["language"], row["text"]) for row in csv.DictReader(source)
        ]
    for name, language in CONVERSATIONS.items():
        path = next((d / name / "comments.csv" for d in polis_dirs if (d / name).is_dir()), None)
        if path is None:
            continue
        with path.open(newline="", encoding="utf-8") as source:
            found += [Labelled(name, language, r["comment-body"]) for r in csv.DictReader(source)]
    return found


def measure_language(
    texts: Sequence[Labelled], clear: float = CLEAR, min_letters: int = MIN_LETTERS
) -> dict[str, Any]:
    """The language flag's precision and recall over every (text, consultation) judgement,
    and how many texts in a consultation's languages it flagged (false flags)."""
    flagged_right = flagged_wrong = missed = kept = 0
    by_origin: dict[str, dict[str, int]] = {}
    for labelled in texts:
        counts = by_origin.setdefault(labelled.origin, {"judged": 0, "wrong": 0})
        for setup in SETUPS:
            flagged = other_language(labelled.text, setup, clear=clear, min_letters=min_letters)
            foreign = labelled.language not in setup
            flagged_right += bool(flagged) and foreign
            flagged_wrong += bool(flagged) and not foreign
            missed += not flagged and foreign
            kept += not flagged and not foreign
            counts["judged"] += 1
            counts["wrong"] += bool(flagged) != foreign
    said = flagged_right + flagged_wrong
    return {
        "clear": clear,
        "min_letters": min_letters,
        "judgements": flagged_right + flagged_wrong + missed + kept,
        "precision": round(flagged_right / said, 3) if said else None,
        "recall": round(flagged_right / (flagged_right + missed), 3),
        "false_flags": flagged_wrong,
        "in_language": flagged_wrong + kept,
        "by_origin": by_origin,
    }


def _consultation(now: datetime) -> dict[str, Any]:
    return Consultation(
        id=1,
        slug="flags",
        status="open",
        default_locale="fr",
        locales=["fr", "en"],
        question={"en": "How can our town do better?", "fr": "Comment mieux faire ?"},
        settings=ConsultationSettings().model_dump(mode="json"),
        created_at=now,
        updated_at=now,
    ).model_dump()


async def _load(url: str, texts: Sequence[tuple[str, str]], now: datetime) -> int:
    """A new schema with one consultation and `texts` as pending proposals, four per
    participant over the last week; returns how many participants."""
    tables = SQLModel.metadata.tables
    engine = create_engine(url)
    await empty_schema(engine)
    await migrate(engine)
    authors = max(1, len(texts) // 4)
    participants: list[dict[str, Any]] = [
        {"id": n, "created_at": now, "step": "menu", "state": {}} for n in range(1, authors + 1)
    ]
    participations: list[dict[str, Any]] = [
        {
            "participant_id": n,
            "consultation_id": 1,
            "source": SOURCES[n % len(SOURCES)],
            "profile": {},
            "subscribed": True,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(1, authors + 1)
    ]
    prefixes = ("We should", "We need to", "The town should", "Il faut", "Il faudrait")
    spread = timedelta(days=7) / max(1, len(texts))
    proposals: list[dict[str, Any]] = [
        {
            "id": number,
            "consultation_id": 1,
            "locale": locale,
            "text": body,
            "author_id": 1 + (number - 1) % authors,
            "status": ProposalStatus.PENDING,
            "shuffle": number / (len(texts) + 1),
            "flags": "",
            "text_key": text_key(body_of(body, prefixes)),
            "created_at": now - spread * (len(texts) - number),
            "updated_at": now,
        }
        for number, (body, locale) in enumerate(texts, start=1)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(tables["consultation"]).values(_consultation(now)))
        for table, rows in (
            ("participant", participants),
            ("participation", participations),
            ("proposal", proposals),
        ):
            it = iter(rows)
            while chunk := list(islice(it, _CHUNK)):
                await connection.execute(insert(tables[table]), chunk)
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":  # what autovacuum does after such a load
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
            for table in ("participant", "proposal"):  # ids given above: move the sequences on
                await connection.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    await engine.dispose()
    return authors


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 3), "p99": round(percentile(values, 0.99), 3)}


async def measure_submissions(
    database_url: str, proposals: int, submissions: int, seed: int = 7
) -> dict[str, Any]:
    """p50/p99 ms of a submission with its flags, and of storing one without (see the module)."""
    now = datetime.now(UTC).replace(microsecond=0)
    existing = generated_proposals(proposals, seed)
    authors = await _load(database_url, existing, now)
    typed = generated_proposals(2 * (WARM_UP + submissions), seed + 1)
    rng = random.Random(seed)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    settings = ConsultationSettings()
    ours: list[float] = []
    base: list[float] = []
    copies = flagged = 0
    gc.collect()
    for number in range(WARM_UP + submissions):
        timed = number >= WARM_UP
        body, locale = typed[2 * number]
        if number % 10 == 0:
            body, locale = existing[rng.randrange(proposals)]
            copies += timed
        author = rng.randrange(1, authors + 1)
        async with sessions() as session:
            await session.get(Consultation, 1)  # loaded already when a participant proposes
            started = time.perf_counter()
            proposal = await submit_proposal(session, author, 1, body, locale, settings, now)
            await session.commit()
            elapsed = (time.perf_counter() - started) * 1000
            flagged += timed and bool(proposal.flags)
        body, locale = typed[2 * number + 1]
        plain = Proposal(
            consultation_id=1,
            locale=locale,
            text=body,
            author_id=None,  # not a participant's: no burst of theirs to count it in
            status=ProposalStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        async with sessions() as session:
            await session.get(Consultation, 1)  # loaded already when a participant proposes
            started = time.perf_counter()
            await add_proposal(session, plain)
            await session.commit()
            stored = (time.perf_counter() - started) * 1000
        if timed:
            ours.append(elapsed)
            base.append(stored)
    await engine.dispose()
    return {
        "proposals": proposals,
        "submissions": len(ours),
        "copies": copies,
        "flagged": flagged,
        "submit_ms": _stats(ours),
        "store_only_ms": _stats(base),
    }


def run_flags(proposals: int, submissions: int, postgres_url: str | None) -> dict[str, Any]:
    """Quality (no database), then speed on SQLite and on PostgreSQL when the server at
    `postgres_url` answers (in its `consult_bench` database)."""
    texts = labelled_texts()
    chosen = measure_language(texts)
    sweep = [measure_language(texts, clear, letters) for clear, letters in SWEEP]
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        backends = [("sqlite", f"sqlite:///{Path(scratch) / 'flags.sqlite3'}")]
        bench_url = asyncio.run(bench_database(postgres_url)) if postgres_url else None
        if bench_url:
            backends.append(("postgresql", bench_url))
        speed = [
            {"backend": name, **asyncio.run(measure_submissions(url, proposals, submissions))}
            for name, url in backends
        ]
    return {
        "benchmark": "flags",
        "texts": len(texts),
        "language": chosen,
        "sweep": [{k: v for k, v in s.items() if k != "by_origin"} for s in sweep],
        "speed": speed,
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(report: dict[str, Any]) -> str:
    """The report as a person reads it."""
    chosen = report["language"]
    lines = [
        f"Language flag on {report['texts']} texts, each judged in 3 consultations "
        f"(fr+en, fr, en): {chosen['judgements']} judgements",
        f"  chosen (clear {chosen['clear']}, {chosen['min_letters']} letters): precision "
        f"{_cell(chosen['precision'])}, recall {_cell(chosen['recall'])}, "
        f"false flags {chosen['false_flags']} of {chosen['in_language']} in-language",
    ]
    for origin, counts in chosen["by_origin"].items():
        lines.append(f"    {origin:22} wrong {counts['wrong']:4} of {counts['judged']}")
    lines.append(f"  {'clear':>6} {'letters':>7} {'precision':>9} {'recall':>7} {'false':>6}")
    for row in report["sweep"]:
        lines.append(
            f"  {row['clear']:>6} {row['min_letters']:>7} {_cell(row['precision']):>9} "
            f"{_cell(row['recall']):>7} {row['false_flags']:>6}"
        )
    lines.append("")
    lines.append(
        f"  {'backend':10} {'proposals':>9} {'timed':>5} {'submit p50':>10} {'p99':>7} "
        f"{'store p50':>9} {'p99':>7}  (ms; store = without flags)"
    )
    for row in report["speed"]:
        submit, store = row["submit_ms"], row["store_only_ms"]
        lines.append(
            f"  {row['backend']:10} {row['proposals']:>9} {row['submissions']:>5} "
            f"{submit['p50']:>10.3f} {submit['p99']:>7.3f} {store['p50']:>9.3f} "
            f"{store['p99']:>7.3f}"
        )
    return "\n".join(lines)
