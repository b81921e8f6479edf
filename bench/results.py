"""`consult bench results`: the results snapshot at scale, and our groups against Polis's.

Scale: a synthetic consultation (by default 10,000,000 votes, 30,000 proposals, 2,000,000
participants in three camps, each voting on a run of proposals, most a few, some many, the
runs starting mostly among the first proposals; each joined within a month from one of four
sources, most answering an age question the consultation weights to declared margins, and
reads 4 to 40 s per card, one in two hundred skimming) is bulk-inserted into an SQLite file
and, when a server answers, into PostgreSQL; then, in a fresh child process (so that its
memory is the computation's alone), the whole recomputation the scheduler runs every few
minutes (`core.results.recompute.recompute_results`) is timed stage by stage: reading the
votes, trust, the matrix, PCA, clustering, consensus and representative statements, the
reports in each language, the breakdowns, the weighting, qualifications and timelines,
writing the snapshot. Peak memory is the child's VmHWM (resident high-water mark, numpy's
arrays included) after each stage: it only grows, so the last figure is the whole
computation's peak.

Polis (`--polis`): each conversation of the shared Polis exports is imported with
`consult import polis` into a fresh SQLite file; our groups (several seeds) are compared with
Polis's own `group-id` by the adjusted Rand index over the participants both clustered, and the
group-informed consensus we compute with Polis's groups is compared with one computed directly
from the columns of the export's participants-votes.csv.

The shared conversations were gathered using the Polis software (compdemocracy.org/polis) and
are sub-licensed under CC BY 4.0 with Attribution to The Computational Democracy Project.
"""

from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Connection, insert, text

from bench.databases import bench_database, empty_schema
from bots.polis_import import import_polis, polis_channel
from core.definitions import consultation_by_slug, parse_consultation, upsert_consultation
from core.identity import enrol_many
from core.models import Proposal, ProposalStatus
from core.polis import read_polis
from core.results.consensus import counts_by_group, group_informed_consensus
from core.results.groups import OpinionGroups, opinion_groups
from core.results.matrix import vote_matrix
from core.results.recompute import recompute_results
from core.storage import create_engine, migrate, session_factory
from core.voting import recount_votes

SLUG = "bench-results"
SECRET = b"bench-results"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW_MS = round(NOW.timestamp() * 1000)
AGES = ("young", "middle", "old")
SOURCES = ("poster", "radio", "newsletter", "partner")
CAMPS = 3
CHUNK = 500_000
POLIS_SEEDS = (0, 1, 2, 3, 4)
POLIS_NAMES = ("vtaiwan.uberx", "15-per-hour-seattle")
_SHARED = [
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "polis",
    Path("/work/shared/data/polis"),
]


def shared_conversations() -> list[Path]:
    """The shared Polis exports beside the repository (as in CI), where they are."""
    for base in _SHARED:
        found = [base / name for name in POLIS_NAMES if (base / name / "comments.csv").exists()]
        if found:
            return found
    return []


def adjusted_rand_index(a: ArrayLike, b: ArrayLike) -> float:
    """Hubert and Arabie's adjusted Rand index of two labellings of the same items (1: the same
    partition, about 0: no better than chance)."""
    _, x = np.unique(np.asarray(a), return_inverse=True)
    _, y = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((x.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (x, y), 1)
    pairs = sum(comb(int(n), 2) for n in table.ravel())
    rows = sum(comb(int(n), 2) for n in table.sum(axis=1))
    columns = sum(comb(int(n), 2) for n in table.sum(axis=0))
    expected = rows * columns / comb(len(x), 2)
    most = (rows + columns) / 2
    return 1.0 if most == expected else (pairs - expected) / (most - expected)


# --- scale ------------------------------------------------------------------------------------


def _votes_per_person(rng: np.random.Generator, votes: int, people: int, proposals: int) -> Any:
    """Votes each participant casts: geometric (most a few, some many), summing to about
    `votes`, between 1 and `proposals`."""
    mean = votes / people
    counts = rng.geometric(1 / mean, size=people).astype(np.float64)
    counts = np.clip(np.round(counts * votes / counts.sum()), 1, proposals).astype(np.int64)
    return counts


async def _generate(url: str, votes: int, people: int, proposals: int, seed: int) -> int:
    """Fill the database at `url` with the synthetic consultation; returns the votes written."""
    engine = create_engine(url)
    await empty_schema(engine)
    await migrate(engine)
    sessions = session_factory(engine)
    spec = parse_consultation(
        {
            "slug": SLUG,
            "status": "open",
            "default_locale": "en",
            "locales": ["en", "fr"],
            "question": {"en": "A synthetic consultation", "fr": "Une consultation synthétique"},
            "profile_questions": [
                {
                    "id": "age",
                    "label": {"en": "Your age?", "fr": "Votre âge ?"},
                    "options": [{"id": a, "label": {"en": a, "fr": a}} for a in AGES],
                }
            ],
            "settings": {"population": {"age": dict(zip(AGES, (0.3, 0.4, 0.3), strict=True))}},
        }
    )
    async with sessions() as session, session.begin():
        consultation, _ = await upsert_consultation(session, spec, NOW)
    assert consultation.id is not None
    rows = [
        {
            "consultation_id": consultation.id,
            "ref": f"s{i}",
            "locale": "en",
            "text": f"synthetic proposal {i}",
            "status": ProposalStatus.ACCEPTED.value,
            "flags": "",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(proposals)
    ]
    async with engine.begin() as connection:
        for start in range(0, proposals, 5000):
            await connection.execute(insert(Proposal), rows[start : start + 5000])
        found = await connection.execute(
            text("SELECT min(id) FROM proposal WHERE consultation_id = :c"),
            {"c": consultation.id},
        )
        first_proposal = int(found.scalar_one())
    rng = np.random.default_rng(seed)
    written = 0
    # Each person joins within the month before NOW (their identity a few days older, from one
    # of a few sources, most answering the age question), then reads 4 to 40 s per card; one in
    # two hundred skims (half a second a card), so that trust has people to find.
    joined = NOW_MS - rng.integers(0, 30 * 86_400_000, size=people)
    created = joined - rng.integers(0, 5 * 86_400_000, size=people)
    sources = rng.integers(0, len(SOURCES), size=people)
    ages = rng.integers(0, len(AGES) + 1, size=people)  # len(AGES): no answer
    skims = rng.random(people) < 0.005
    async with engine.begin() as connection:
        found = await connection.execute(text("SELECT coalesce(max(id), 0) FROM participant"))
        first_person = int(found.scalar_one()) + 1
        dialect = connection.dialect.name
        for start in range(0, people, CHUNK):
            ids = np.arange(first_person + start, first_person + min(people, start + CHUNK))
            here = slice(start, start + len(ids))
            await _insert(
                connection,
                "participant",
                ("id", "step", "state", "created_at"),
                list(
                    zip(
                        ids.tolist(),
                        ["new"] * len(ids),
                        ["{}"] * len(ids),
                        _times(created[here], dialect),
                        strict=True,
                    )
                ),
            )
            stamps = _times(joined[here], dialect)
            await _insert(
                connection,
                "participation",
                (
                    "participant_id",
                    "consultation_id",
                    "source",
                    "consented_at",
                    "profile",
                    "subscribed",
                    "created_at",
                    "updated_at",
                ),
                [
                    (
                        pid,
                        consultation.id,
                        SOURCES[source],
                        stamp,
                        json.dumps({"age": AGES[age]} if age < len(AGES) else {}),
                        True,
                        stamp,
                        stamp,
                    )
                    for pid, source, age, stamp in zip(
                        ids.tolist(),
                        sources[here].tolist(),
                        ages[here].tolist(),
                        stamps,
                        strict=True,
                    )
                ],
            )
        per_person = _votes_per_person(rng, votes, people, proposals)
        camp = rng.integers(0, CAMPS, size=people)
        person = 0
        while person < people:
            # A slice of people with about CHUNK votes between them.
            stop = int(np.searchsorted(np.cumsum(per_person[person:]), CHUNK)) + person + 1
            stop = min(max(stop, person + 1), people)
            n = per_person[person:stop]
            owner = np.repeat(np.arange(person, stop), n)
            offset = np.arange(len(owner)) - np.repeat(np.cumsum(n) - n, n)
            # Runs start mostly among the first proposals (as the popular ones are seen by
            # many), so that people's votes overlap and opinions have a shape to find.
            first = (proposals * rng.random(stop - person) ** 4).astype(np.int64)
            column = (np.repeat(first, n) + offset) % proposals
            likes = (column % CAMPS) == camp[owner]
            draw = rng.random(len(owner))
            key = np.where(
                draw < 0.1, 2, np.where(likes == (draw < 0.85), 0, 1)
            )  # 0 agree, 1 disagree, 2 neutral
            names = np.array(["agree", "disagree", "neutral"])[key]
            gap = np.where(skims[owner], 500, rng.integers(4_000, 40_000, size=len(owner)))
            gap[offset == 0] = rng.integers(5_000, 60_000, size=int((offset == 0).sum()))
            ends = np.cumsum(gap)
            at = joined[owner] + ends - np.repeat(ends[np.cumsum(n) - n] - gap[np.cumsum(n) - n], n)
            stamps = _times(at, dialect)
            in_sequence = (rng.random(len(owner)) < 0.95).tolist()
            await _insert(
                connection,
                "vote",
                ("participant_id", "proposal_id", "key", "trusted", "created_at", "updated_at"),
                [
                    (int(p), int(c), str(k), t, s, s)
                    for p, c, k, t, s in zip(
                        (owner + first_person).tolist(),
                        (column + first_proposal).tolist(),
                        names.tolist(),
                        in_sequence,
                        stamps,
                        strict=True,
                    )
                ],
            )
            written += len(owner)
            person = stop
    # The counters each vote's transaction keeps (`core.voting`), set here in one go: the
    # reports score proposals from them.
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tally (proposal_id, key, trusted, count) "
                "SELECT proposal_id, key, trusted, count(*) FROM vote "
                "GROUP BY proposal_id, key, trusted"
            )
        )
    async with sessions() as session, session.begin():
        await recount_votes(session)
    # Statistics as autovacuum (PostgreSQL) or an organiser (SQLite) would have gathered them
    # on a database that grew over weeks: without them, PostgreSQL plans the read for a
    # handful of votes.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE"))
    await engine.dispose()
    return written


def _times(ms: NDArray[np.int64], dialect: str) -> list[Any]:
    """Milliseconds since the epoch as each database takes a time: aware datetimes for
    asyncpg, the text SQLAlchemy writes for SQLite."""
    if dialect == "postgresql":
        return [EPOCH + timedelta(milliseconds=m) for m in ms.tolist()]
    text_times = np.datetime_as_string(ms.astype("datetime64[ms]").astype("datetime64[us]"))
    return [t.replace("T", " ") for t in text_times.tolist()]


async def _insert(
    connection: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Bulk rows: COPY on PostgreSQL (asyncpg), executemany of the plain driver on SQLite."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if connection.dialect.name == "postgresql":
        await driver.copy_records_to_table(table, records=rows, columns=list(columns))
        return

    def run(_: Connection) -> None:
        stamp = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
        fixed = [tuple(stamp if v is NOW else v for v in row) for row in rows]
        marks = ", ".join("?" for _ in columns)
        driver.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", fixed)

    await connection.run_sync(run)


def _peak_mb() -> float:
    """This process's resident high-water mark (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _stages(url: str, seed: int) -> dict[str, Any]:
    """The whole recomputation the scheduler runs (`recompute_results`: the votes read once,
    trust, the groups, the reports in each language, the breakdowns, the weighting, the
    timelines, the snapshot written), timed stage by stage."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    stages: list[dict[str, Any]] = []
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        stages.append({"stage": name, "seconds": round(now - clock[0], 3), "peak_mb": _peak_mb()})
        clock[0] = now

    baseline = _peak_mb()
    async with sessions() as session, session.begin():
        consultation = await consultation_by_slug(session, SLUG)
        assert consultation is not None and consultation.id is not None
        clock[0] = time.perf_counter()
        snapshot = await recompute_results(session, consultation, NOW, seed=seed, lap=lap)
    payload = snapshot.payload
    await engine.dispose()
    trust = payload["dashboard"]["trust"]
    return {
        "participants": payload["participants"],
        "proposals": len(payload["proposals"]),
        "votes": payload["votes"],
        "clustered": payload["clustered"],
        "groups": [g.get("size") for g in payload["groups"]],
        "untrusted": trust["untrusted"],
        "baseline_mb": baseline,
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 3),
        "peak_mb": stages[-1]["peak_mb"],
    }


def _child(url: str, seed: int) -> dict[str, Any]:
    return asyncio.run(_stages(url, seed))


def _measure(url: str, seed: int) -> dict[str, Any]:
    """The stages, run in a fresh process so that its peak memory is theirs alone (a failure
    there is raised here)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_child, (url, seed))
    return result


def measure_scale(
    url: str, votes: int, participants: int, proposals: int, seed: int = 1
) -> dict[str, Any]:
    """Generate the synthetic consultation into the database at `url` (emptied first), then
    time each stage in a child process."""
    started = time.perf_counter()
    written = asyncio.run(_generate(url, votes, participants, proposals, seed))
    generated = round(time.perf_counter() - started, 1)
    return {"generated_votes": written, "generate_seconds": generated} | _measure(url, seed)


def run_scale(
    votes: int, participants: int, proposals: int, postgres: str | None, seed: int = 1
) -> dict[str, Any]:
    """Generate, then measure, on SQLite and on PostgreSQL when `postgres` answers."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        targets = [("sqlite", f"sqlite:///{Path(folder) / 'results.sqlite3'}")]
        if postgres is not None:
            url = asyncio.run(bench_database(postgres))
            if url is not None:
                targets.append(("postgresql", url))
        for backend, url in targets:
            measured = measure_scale(url, votes, participants, proposals, seed)
            rows.append({"backend": backend} | measured)
    return {"goal": {"seconds": 30, "peak_mb": 4096}, "runs": rows}


# --- against Polis ----------------------------------------------------------------------------


def _export_consensus(directory: Path, comments: list[int]) -> dict[int, float]:
    """Group-informed consensus straight from participants-votes.csv's columns, with Polis's
    group-id: per comment, the product over groups of (agrees + 1) / (seen + 2)."""
    agree: Counter[tuple[int, int]] = Counter()
    seen: Counter[tuple[int, int]] = Counter()
    groups = set()
    with (directory / "participants-votes.csv").open(newline="", encoding="utf-8") as source:
        for row in csv.DictReader(source):
            if not (row.get("group-id") or "").strip():
                continue
            group = int(float(row["group-id"]))
            groups.add(group)
            for comment in comments:
                value = (row.get(str(comment)) or "").strip()
                if value:
                    seen[group, comment] += 1
                    agree[group, comment] += float(value) == 1
    result = {}
    for comment in comments:
        product = 1.0
        for group in groups:
            product *= (agree[group, comment] + 1) / (seen[group, comment] + 2)
        result[comment] = product
    return result


async def _polis_one(directory: Path, folder: Path) -> dict[str, Any]:
    conversation = read_polis(directory)
    slug = "polis"
    engine = create_engine(f"sqlite:///{folder / (directory.name + '.sqlite3')}")
    await migrate(engine)
    sessions = session_factory(engine)
    await import_polis(sessions, SECRET, conversation, slug, "en", NOW)
    async with sessions() as session, session.begin():
        consultation = await consultation_by_slug(session, slug)
        assert consultation is not None
        matrix = await vote_matrix(session, consultation)
        voters = [str(v) for v in conversation.voters]
        ids = await enrol_many(session, SECRET, polis_channel(slug), voters, NOW)
    await engine.dispose()
    voter_of = {ids[v]: int(v) for v in voters}
    polis_labels = np.array(
        [
            -1 if (g := conversation.groups.get(voter_of[int(p)])) is None else g
            for p in matrix.participants
        ]
    )
    runs: list[dict[str, Any]] = []
    for seed in POLIS_SEEDS:
        found = opinion_groups(matrix, seed=seed)
        if not isinstance(found, OpinionGroups):
            runs.append({"seed": seed, "groups": 0, "ari": None})
            continue
        both = (found.labels >= 0) & (polis_labels >= 0)
        ari = adjusted_rand_index(found.labels[both], polis_labels[both])
        runs.append(
            {"seed": seed, "groups": found.k, "sizes": found.sizes, "ari": round(ari, 3)}
            | {"compared": int(both.sum())}
        )
    k = int(polis_labels.max()) + 1
    ours = group_informed_consensus(counts_by_group(matrix, polis_labels, k))[0]
    comments = [int(ref.removeprefix("polis-")) for ref in matrix.refs]
    theirs = _export_consensus(directory, comments)
    gaps = np.abs(ours - np.array([theirs[c] for c in comments]))
    aris = [r["ari"] for r in runs if r["ari"] is not None]
    return {
        "conversation": directory.name,
        "participants": matrix.shape[0],
        "comments": matrix.shape[1],
        "votes": matrix.votes,
        "polis_groups": dict(sorted(Counter(int(x) for x in polis_labels if x >= 0).items())),
        "runs": runs,
        "ari_median": float(np.median(aris)) if aris else None,
        "consensus_max_gap": float(gaps.max()) if len(gaps) else 0.0,
        "consensus_mean_gap": float(gaps.mean()) if len(gaps) else 0.0,
        "consensus_close": int((gaps < 1e-9).sum()),
    }


def run_polis(directories: list[Path]) -> dict[str, Any]:
    """Our groups and consensus against Polis's, on each export directory."""
    with tempfile.TemporaryDirectory() as folder:
        return {
            "conversations": [
                asyncio.run(_polis_one(directory, Path(folder))) for directory in directories
            ]
        }


# --- tables -----------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    lines = []
    for row in report.get("runs", []):
        lines.append(
            f"{row['backend']}: {row['votes']:,} votes, {row['participants']:,} participants, "
            f"{row['proposals']:,} proposals (generated in {row['generate_seconds']} s); "
            f"clustered {row['clustered']:,}, groups {row['groups']}, "
            f"untrusted {row['untrusted']:,}"
        )
        lines.append(f"  {'stage':<24} {'seconds':>8} {'peak MB':>9}")
        for stage in row["stages"]:
            lines.append(
                f"  {stage['stage']:<24} {stage['seconds']:>8.2f} {stage['peak_mb']:>9.0f}"
            )
        goal = report["goal"]
        verdict = (
            "meets"
            if row["total_seconds"] < goal["seconds"] and row["peak_mb"] < goal["peak_mb"]
            else "misses"
        )
        lines.append(
            f"  {'total':<24} {row['total_seconds']:>8.2f} {row['peak_mb']:>9.0f}  "
            f"({verdict} the goal: {goal['seconds']} s, {goal['peak_mb']} MB)"
        )
    for c in report.get("conversations", []):
        lines.append(
            f"{c['conversation']}: {c['participants']} participants, {c['comments']} comments, "
            f"{c['votes']} votes; Polis's groups {c['polis_groups']}"
        )
        for run in c["runs"]:
            lines.append(
                f"  seed {run['seed']}: {run['groups']} groups {run.get('sizes', '')}, "
                f"ARI {run['ari']} over {run.get('compared', 0)} participants"
            )
        lines.append(
            f"  ARI median {c['ari_median']}; consensus with Polis's groups vs the export: "
            f"max gap {c['consensus_max_gap']:.2e}, mean {c['consensus_mean_gap']:.2e}, "
            f"{c['consensus_close']}/{c['comments']} equal"
        )
    return "\n".join(lines)
