"""`consult bench similarity`: how well similar proposals are found, and how fast.

Quality: every pair of tests/data/similarity_pairs.csv (French and English, written by hand:
paraphrases and near-duplicates say the same; same-topic pairs and unrelated ones do not).
Every text of the set is an accepted proposal of one consultation (en + fr); a pair counts as
found similar when looking up its first text returns its second at the threshold, through the
same `similar_proposals` a submission calls. Precision, recall and F1 overall, by language, and
by kind (the share judged similar), and the same figures at a few other thresholds.

Speed: `similar_proposals` at submission, its database reads included, among N generated
accepted proposals (30,000 by default) on an SQLite file and on PostgreSQL when a server
answers; the baseline, in the same run on the same database, is a primary-key read of three
proposals (what showing three similar proposals costs at the least).
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
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import SQLModel, col, select

from bench.databases import bench_database, empty_schema
from bench.selection_timing import percentile
from core.models import Consultation, Proposal
from core.moderation.index import index_rows
from core.moderation.similarity import THRESHOLD, TermSimilarity, similar_proposals
from core.storage import create_engine, migrate, session_factory

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "similarity_pairs.csv"
SWEEP = (0.3, 0.35, 0.4, THRESHOLD, 0.45, 0.5, 0.55, 0.6)
WARM_UP = 20
_CHUNK = 5000


@dataclass(frozen=True)
class Pair:
    locale: str
    kind: str
    a: str
    b: str
    similar: bool


def read_pairs(path: Path = PAIRS) -> list[Pair]:
    with path.open(newline="", encoding="utf-8") as source:
        return [
            Pair(row["locale"], row["kind"], row["a"], row["b"], row["similar"] == "1")
            for row in csv.DictReader(source)
        ]


def _consultation(slug: str, now: datetime) -> dict[str, Any]:
    return Consultation(
        id=1,
        slug=slug,
        status="open",
        default_locale="en",
        locales=["en", "fr"],
        question={
            "en": "How can our town do better?",
            "fr": "Comment notre ville peut-elle mieux faire ?",
        },
        created_at=now,
        updated_at=now,
    ).model_dump()


async def _load(url: str, slug: str, texts: Sequence[tuple[str, str]]) -> None:
    """A new schema holding `texts` (text, locale) as accepted proposals 1..n, indexed."""
    tables = SQLModel.metadata.tables
    now = datetime.now(UTC)
    engine = create_engine(url)
    await empty_schema(engine)
    await migrate(engine)
    rows = [
        {
            "id": number,
            "consultation_id": 1,
            "locale": locale,
            "text": body,
            "status": "accepted",
            "shuffle": number / (len(texts) + 1),
            "created_at": now,
            "updated_at": now,
        }
        for number, (body, locale) in enumerate(texts, start=1)
    ]
    postings, counts = index_rows(
        (number, 1, body, locale, "accepted") for number, (body, locale) in enumerate(texts, 1)
    )
    async with engine.begin() as connection:
        await connection.execute(insert(tables["consultation"]).values(_consultation(slug, now)))
        for table, values in (
            ("proposal", rows),
            ("proposalterm", postings),
            ("termcount", counts),
        ):
            it = iter(values)
            while chunk := list(islice(it, _CHUNK)):
                await connection.execute(insert(tables[table]), chunk)
    if engine.dialect.name == "postgresql":  # what autovacuum does after such a load
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    await engine.dispose()


def _metrics(found: list[bool], truth: list[bool]) -> dict[str, Any]:
    hits = sum(f and t for f, t in zip(found, truth, strict=True))
    said, real = sum(found), sum(truth)
    precision = hits / said if said else None
    recall = hits / real if real else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    return {
        "pairs": len(truth),
        "precision": None if precision is None else round(precision, 3),
        "recall": None if recall is None else round(recall, 3),
        "f1": None if f1 is None else round(f1, 3),
        "judged_similar": round(said / len(truth), 3) if truth else None,
    }


async def measure_quality(database_url: str, pairs: Sequence[Pair]) -> dict[str, Any]:
    """Precision, recall and F1 of `similar_proposals` on the labelled pairs (see the module)."""
    texts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        for body in (pair.a, pair.b):
            texts.setdefault((body, pair.locale), len(texts) + 1)
    await _load(database_url, "pairs", list(texts))
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    everything = TermSimilarity(threshold=0.0)
    scores = []
    async with sessions() as session:
        for pair in pairs:
            found = await similar_proposals(
                session,
                1,
                pair.a,
                pair.locale,
                limit=len(texts),
                exclude_id=texts[(pair.a, pair.locale)],
                similarity=everything,
            )
            wanted = texts[(pair.b, pair.locale)]
            scores.append(next((s.score for s in found if s.proposal_id == wanted), 0.0))
    await engine.dispose()
    truth = [pair.similar for pair in pairs]

    def at(threshold: float, chosen: Sequence[int]) -> dict[str, Any]:
        return _metrics([scores[i] >= threshold for i in chosen], [truth[i] for i in chosen])

    every = range(len(pairs))
    split: dict[str, dict[str, Any]] = {}
    for field in ("locale", "kind"):
        for value in sorted({getattr(pair, field) for pair in pairs}):
            chosen = [i for i in every if getattr(pairs[i], field) == value]
            split[f"{field}={value}"] = at(THRESHOLD, chosen)
    return {
        "threshold": THRESHOLD,
        "overall": at(THRESHOLD, every),
        "split": split,
        "sweep": {f"{threshold:.2f}": at(threshold, every) for threshold in SWEEP},
    }


# Generated proposals: a town's consultation, six themes, both languages. Place names make the
# rare words a real consultation has (streets, districts, schools).
_THEMES: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "run|add|fund|extend",
            "night buses|trams|bike lanes|train services|car sharing|footpaths",
        ),
        ("visit|support|house|help", "elderly neighbours|care homes|home carers|lonely seniors"),
        ("build|renovate|open|equip", "school canteens|playgrounds|classrooms|sports halls"),
        ("build|insulate|renovate|rent out", "social housing|empty flats|student rooms|old houses"),
        ("plant|protect|clean|green", "street trees|community gardens|river banks|wetlands|parks"),
        ("offer|allow|fund|improve", "remote work|flexible hours|staff canteens|parental leave"),
    ],
    "fr": [
        ("créer|ajouter|financer|prolonger", "bus de nuit|tramways|pistes cyclables|autopartage"),
        ("visiter|soutenir|loger|aider", "voisins âgés|maisons de retraite|aides à domicile"),
        ("construire|rénover|ouvrir|équiper", "cantines scolaires|salles de classe|gymnases"),
        (
            "construire|isoler|rénover|louer",
            "logements sociaux|appartements vides|vieilles maisons",
        ),
        ("planter|protéger|nettoyer|végétaliser", "arbres de rue|jardins partagés|berges|parcs"),
        ("proposer|permettre|financer|améliorer", "télétravail|horaires souples|congés parentaux"),
    ],
}
_FRAMES = {
    "en": ("We should", "We need to", "The town should"),
    "fr": ("Il faut", "Il faudrait", "La ville doit"),
}
_PLACES = {"en": "in|near|around|along", "fr": "à|près de|autour de|le long de"}
_WHEN = {
    "en": "|every weekend|before 2030|all year round|at night|for everyone|for families|in winter",
    "fr": "|chaque week-end|avant 2030|toute l'année|la nuit|pour tous|pour les familles|en hiver",
}
_SYLLABLES: tuple[str, ...] = (
    "bel",
    "mont",
    "ver",
    "ron",
    "cha",
    "lieu",
    "bois",
    "val",
    "port",
    "roc",
    "fon",
)
_SYLLABLES += ("mar", "lan", "tre", "gar", "sau", "bru", "ker", "dal", "vin")


def generated_proposals(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (text, locale) proposals, half English, half French, seeded."""
    rng = random.Random(seed)
    names = sorted({"".join(rng.sample(_SYLLABLES, 3)).capitalize() for _ in range(600)})
    made = []
    for number in range(count):
        locale = "en" if number % 2 == 0 else "fr"
        verbs, things = rng.choice(_THEMES[locale])
        sentence = [
            rng.choice(_FRAMES[locale]),
            rng.choice(verbs.split("|")),
            rng.choice(things.split("|")),
            rng.choice(_PLACES[locale].split("|")),
            rng.choice(names),
            rng.choice(_WHEN[locale].split("|")),
        ]
        made.append((" ".join(word for word in sentence if word), locale))
    return made


async def measure_lookups(
    database_url: str, proposals: int, lookups: int, seed: int = 7
) -> dict[str, Any]:
    """p50/p99 ms of a lookup at submission (database reads included) among `proposals`
    accepted ones, and of the baseline: a primary-key read of three proposals."""
    await _load(database_url, "lookups", generated_proposals(proposals, seed))
    queries = generated_proposals(WARM_UP + lookups, seed + 1)  # the first ones untimed
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    rng = random.Random(seed)
    ours: list[float] = []
    base: list[float] = []
    found = 0
    gc.collect()
    for call, (body, locale) in enumerate(queries):
        timed = call >= WARM_UP
        async with sessions() as session:
            await (await session.connection()).exec_driver_sql("SELECT 1")
            started = time.perf_counter()
            similar = await similar_proposals(session, 1, body, locale)
            elapsed = (time.perf_counter() - started) * 1000
        if timed:
            ours.append(elapsed)
            found += bool(similar)
        ids = [rng.randrange(1, proposals + 1) for _ in range(3)]
        async with sessions() as session:
            await (await session.connection()).exec_driver_sql("SELECT 1")
            started = time.perf_counter()
            list(await session.exec(select(Proposal).where(col(Proposal.id).in_(ids))))
            elapsed = (time.perf_counter() - started) * 1000
        if timed:
            base.append(elapsed)
    await engine.dispose()
    return {
        "proposals": proposals,
        "lookups": len(ours),
        "with_similar": found,
        "lookup_ms": {
            "p50": round(percentile(ours, 0.5), 3),
            "p99": round(percentile(ours, 0.99), 3),
        },
        "baseline_ms": {
            "p50": round(percentile(base, 0.5), 3),
            "p99": round(percentile(base, 0.99), 3),
        },
    }


def run_similarity(proposals: int, lookups: int, postgres_url: str | None) -> dict[str, Any]:
    """Quality on SQLite (the figures are the database's alike), speed on SQLite and on
    PostgreSQL when the server at `postgres_url` answers (in its `consult_bench` database)."""
    pairs = read_pairs()
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        quality = asyncio.run(
            measure_quality(f"sqlite:///{Path(scratch) / 'pairs.sqlite3'}", pairs)
        )
        backends = [("sqlite", f"sqlite:///{Path(scratch) / 'lookups.sqlite3'}")]
        bench_url = asyncio.run(bench_database(postgres_url)) if postgres_url else None
        if bench_url:
            backends.append(("postgresql", bench_url))
        speed = [
            {"backend": name, **asyncio.run(measure_lookups(url, proposals, lookups))}
            for name, url in backends
        ]
    return {
        "benchmark": "similarity",
        "pairs": str(PAIRS.name),
        "quality": quality,
        "speed": speed,
        "goal": "lookup p99 under 20 ms among 30,000 accepted proposals",
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(report: dict[str, Any]) -> str:
    quality = report["quality"]
    lines = [
        f"similar at score >= {quality['threshold']} ({report['pairs']})",
        f"{'pairs':<22} {'n':>4} {'precision':>9} {'recall':>7} {'F1':>6} {'judged similar':>15}",
    ]
    rows = [("all", quality["overall"]), *quality["split"].items()]
    rows += [(f"threshold {t}", m) for t, m in quality["sweep"].items()]
    for name, m in rows:
        lines.append(
            f"{name:<22} {m['pairs']:>4} {_cell(m['precision']):>9} {_cell(m['recall']):>7} "
            f"{_cell(m['f1']):>6} {_cell(m['judged_similar']):>15}"
        )
    lines.append("")
    lines.append(
        f"{'backend':<11} {'proposals':>9} {'lookups':>7} "
        f"{'lookup p50/p99 ms':>18} {'3 by id p50/p99 ms':>19}"
    )
    for row in report["speed"]:
        ours, base = row["lookup_ms"], row["baseline_ms"]
        lines.append(
            f"{row['backend']:<11} {row['proposals']:>9} {row['lookups']:>7} "
            f"{ours['p50']:>8.2f} / {ours['p99']:<7.2f} {base['p50']:>8.2f} / {base['p99']:<7.2f}"
        )
    return "\n".join(lines)
