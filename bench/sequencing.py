"""`consult bench sequencing`: which sequencing finds the consensus with the fewest votes.

Each algorithm plays the same simulated consultations (`bench.populations`: synthetic ones and
Polis replays) with the same votes budget per participant; what emerged is scored against the
truth of the simulated population. The small datasets hand each selection every arrived proposal;
the large one (a full run's, or --large) the bounded pool production would read (`bench.pools`).
The figures:
- precision@10 of the consensus set and precision@5 of the controversy set at the end, both
  estimated from the counters the same way for every algorithm (smoothed rates of
  `core.scoring`);
- the votes needed to reach precision@10 >= 0.9 for good (checked every 2% of the run), next
  to the votes cast when the last of the true top 10 arrived: proposals arrive while the
  participants do, so no algorithm can be sure of the whole top 10 before that point (it
  censors the comparison: an algorithm can only beat another by what lies above it);
- the share of proposals that got 10 votes; the median and p99 time of one selection.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError

from bench.databases import bench_database
from bench.pools import PoolShape
from bench.populations import Dataset, Population, synthetic
from bench.selection_timing import (
    HISTORY,
    OTHER_VOTERS,
    database_timing,
    percentile,
    scale_rows,
    scale_timing,
)
from bench.simulation import SEQUENCE, Run, arrival_floor, simulate
from core.sequencing import FRESH_BELOW, READS_CONTENDERS


@dataclass(frozen=True)
class LargeDataset:
    """A synthetic consultation large enough that production's bounded pool binds: each
    selection sees a few hundred of its proposals, built as `next_proposals_for` builds it."""

    proposals: int = 2000
    participants: int = 20_000
    seeds: tuple[int, ...] = (1, 2, 3)  # most of a full run's time: see bench/README.md
    pool: PoolShape = field(default_factory=PoolShape)


LARGE = "synthetic-large"  # its name in the report


@dataclass(frozen=True)
class Plan:
    """How much to simulate: `--quick` stays under a minute on a 2-core machine."""

    participants: int
    proposals: int
    seeds: tuple[int, ...]
    budgets: tuple[int, ...] = (5, 10, 20)
    scale_proposals: int = 30_000
    scale_calls: int = 200
    scale_other_voters: int = OTHER_VOTERS  # beside the timed participant, HISTORY votes each
    large: LargeDataset | None = None  # None: left out


QUICK = Plan(participants=600, proposals=120, seeds=(1, 2, 3), scale_calls=50)
# Whether P@10 stays >= 0.9 swings a lot from one simulated crowd to the next when true rates
# nearly tie (as in both real conversations): 9 seeds, quartiles next to the medians.
FULL = Plan(
    participants=2000,
    proposals=240,
    seeds=tuple(range(1, 10)),
    large=LargeDataset(),
    scale_other_voters=10_000,  # 2,000,000 votes in the table the selection excludes from
)

_Task = tuple[Population, str, int, int, int, PoolShape | None]


def _play(task: _Task) -> Run:
    return simulate(*task)


def _played(tasks: Sequence[_Task], jobs: int) -> list[Run]:
    """The runs of `tasks`, in their order; the longest started first, so that no process is
    left alone with a large consultation at the end."""
    longest = sorted(range(len(tasks)), key=lambda i: -tasks[i][2] * tasks[i][3])
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            runs = list(pool.map(_play, [tasks[i] for i in longest]))
    else:
        runs = [_play(tasks[i]) for i in longest]
    played = dict(zip(longest, runs, strict=True))
    return [played[i] for i in range(len(tasks))]


def _describe_pool(pool: PoolShape | None) -> dict[str, object]:
    if pool is None:
        return {"mode": "whole"}
    return {
        "mode": "production",
        **asdict(pool),
        "note": "sample_limit (--sample-limit) changes the simulated pool only; selection_at_scale"
        f" times production's next_proposals_for, sample of {PoolShape().sample_limit}",
    }


def _quartiles(values: Sequence[int | None]) -> tuple[int | None, int | None, int | None]:
    """Lower quartile, median and upper quartile, "never" (None) ranking after any number.

    Values of the list, not interpolated (a mean of a number and "never" means nothing): with
    an even count, the median is the upper of the two middle values.
    """
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    count = len(ranked)
    return ranked[(count - 1) // 4], ranked[count // 2], ranked[min(count - 1, 3 * count // 4)]


def run_suite(
    datasets: Sequence[Dataset],
    plan: Plan,
    algorithms: Sequence[str],
    jobs: int = 1,
    postgres: str | None = None,
) -> dict[str, object]:
    """Every algorithm on every dataset and budget, once per seed; medians over seeds.

    A dataset makes its population for a seed (a synthetic one is drawn anew; a fitted real
    one stays the same and only the simulated participants change). With `jobs` > 1 the
    consultations are played in that many processes (each is independent and seeded, so the
    figures do not depend on `jobs`; only the selection times feel the neighbours).
    The `datasets` are played with the plan's participants and seeds and the whole pool; the
    plan's large dataset, if any, with its own, and production's bounded pool.
    The selections at scale are timed on an SQLite file (`with_database_*`), then in the
    PostgreSQL database `postgres` too if given (`with_postgresql_*`; its tables are
    replaced). If that fails, the report says why and keeps the rest.
    """
    played_as: list[tuple[str, Callable[[int], Population], int, tuple[int, ...], PoolShape | None]]
    played_as = [(name, make, plan.participants, plan.seeds, None) for name, make in datasets]
    large = plan.large
    if large is not None:
        proposals = large.proposals
        played_as.append(
            (
                LARGE,
                lambda seed: synthetic(seed, proposals),
                large.participants,
                large.seeds,
                large.pool,
            )
        )
    described: list[dict[str, object]] = []
    tasks: list[_Task] = []
    cells: list[tuple[str, int, str, list[int], slice]] = []
    for name, make, participants, seeds, pool in played_as:
        populations = {seed: make(seed) for seed in seeds}
        first = populations[seeds[0]]
        described.append(
            {
                "name": name,
                "proposals": len(first.texts),
                "participants": participants,
                "seeds": list(seeds),
                "pool": _describe_pool(pool),
                "truth": first.truth,
                "group_balance_gain": first.balance_gains(),
            }
        )
        for budget in plan.budgets:
            floors = [arrival_floor(populations[seed], participants, budget) for seed in seeds]
            for algorithm in algorithms:
                start = len(tasks)
                tasks += [
                    (populations[seed], algorithm, budget, participants, seed, pool)
                    for seed in seeds
                ]
                cells.append((name, budget, algorithm, floors, slice(start, len(tasks))))
    played = _played(tasks, jobs)
    rows: list[dict[str, object]] = []
    for name, budget, algorithm, floors, runs_of_cell in cells:
        runs = played[runs_of_cell]
        timings = [t for r in runs for t in r.selection_ms]
        reached = [r.votes_to_target for r in runs]
        low, middle, high = _quartiles(reached)
        rows.append(
            {
                "dataset": name,
                "algorithm": algorithm,
                "budget": budget,
                "consensus_precision_at_10": statistics.median(r.consensus_precision for r in runs),
                "controversy_precision_at_5": statistics.median(
                    r.controversy_precision for r in runs
                ),
                "votes_to_precision_0_9": middle,
                "votes_to_precision_0_9_quartiles": [low, high],
                "votes_to_precision_0_9_per_seed": reached,
                "seeds_reaching_0_9": sum(v is not None for v in reached),
                "votes_when_last_true_top10_arrived": statistics.median(floors),
                "votes": runs[0].votes,
                "share_with_10_votes": statistics.median(r.reached_ten for r in runs),
                "selection_ms_median": statistics.median(timings) if timings else None,
                "selection_ms_p99": percentile(timings, 0.99) if timings else None,
            }
        )
    rows_at_scale = scale_rows(plan.scale_proposals, 7)
    voters = plan.scale_other_voters
    with_database = asyncio.run(
        database_timing(algorithms, rows_at_scale, 7, plan.scale_calls, other_voters=voters)
    )
    with_postgres: dict[str, tuple[float, float]] = {}
    postgres_status = "left out"
    if postgres:
        try:
            with_postgres = asyncio.run(
                database_timing(
                    algorithms, rows_at_scale, 7, plan.scale_calls, postgres, other_voters=voters
                )
            )
            postgres_status = "measured"
        except (SQLAlchemyError, OSError) as error:  # the simulations' figures still count
            postgres_status = f"failed: {type(error).__name__}: {error}".splitlines()[0]
    scale = {}
    for name in algorithms:
        alone = scale_timing(name, rows_at_scale, 7, plan.scale_calls)
        postgres_times = with_postgres.get(name, (None, None))
        scale[name] = {
            "median_ms": alone[0],
            "p99_ms": alone[1],
            "with_database_median_ms": with_database[name][0],
            "with_database_p99_ms": with_database[name][1],
            "with_postgresql_median_ms": postgres_times[0],
            "with_postgresql_p99_ms": postgres_times[1],
        }
    return {
        "benchmark": "sequencing",
        "algorithms": list(algorithms),
        "budgets": list(plan.budgets),
        "seeds": list(plan.seeds),
        "participants": plan.participants,
        "jobs": jobs,
        "datasets": described,
        "large_dataset": "included"
        if large
        else f"left out: --quick runs {LARGE} only with --large",
        "results": rows,
        "goal": goal(rows),
        "selection_at_scale": {
            "proposals": plan.scale_proposals,
            "votes_in_table": (voters + 1) * HISTORY,
            "postgresql": postgres_status,
            "by_algorithm": scale,
        },
    }


GOAL_REDUCTION = 0.3  # adaptive needs at least 30% fewer votes than makeorg to reach P@10 >= 0.9
QUALITY = (  # (metric, True when higher is better): what adaptive may never do worse than uniform
    ("consensus_precision_at_10", True),
    ("controversy_precision_at_5", True),
    ("votes_to_precision_0_9", False),
    ("share_with_10_votes", True),
)


def _worse(ours: object, theirs: object, higher_is_better: bool) -> bool:
    if higher_is_better:
        assert isinstance(ours, float | int) and isinstance(theirs, float | int)
        return ours < theirs
    if ours is None:  # never reached
        return theirs is not None
    return theirs is not None and ours > theirs  # type: ignore[operator]


def goal(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Per dataset and budget: adaptive against makeorg (votes to P@10 >= 0.9) and uniform.

    `reduction` is 1 - adaptive / makeorg on the medians; None when either never reached it
    (adaptive alone reaching it counts as meeting the goal). Selection times are not compared
    with uniform's (doing nothing is always fastest): the budget for them is 5 ms at scale.
    """
    by = {(r["dataset"], r["budget"], r["algorithm"]): r for r in rows}
    verdicts: list[dict[str, object]] = []
    for (dataset, budget, algorithm), ours in by.items():
        makeorg, uniform = (
            by.get((dataset, budget, "makeorg")),
            by.get((dataset, budget, "uniform")),
        )
        if algorithm != "adaptive" or makeorg is None or uniform is None:
            continue
        mine, theirs = ours["votes_to_precision_0_9"], makeorg["votes_to_precision_0_9"]
        reduction = None
        if isinstance(mine, int) and isinstance(theirs, int):
            reduction = 1 - mine / theirs
        met = mine is not None and (theirs is None or (reduction or 0) >= GOAL_REDUCTION)
        worse = [
            metric for metric, higher in QUALITY if _worse(ours[metric], uniform[metric], higher)
        ]
        verdicts.append(
            {
                "dataset": dataset,
                "budget": budget,
                "adaptive_votes": mine,
                "makeorg_votes": theirs,
                "reduction": reduction,
                "fewer_votes_goal_met": met,
                "worse_than_uniform_on": worse,
            }
        )
    return verdicts


def _fmt(value: object) -> str:
    if value is None:
        return "never"
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _describe_dataset(dataset: dict[str, object]) -> str:
    pool = dataset["pool"]
    seeds = dataset["seeds"]
    assert isinstance(pool, dict) and isinstance(seeds, list)
    said = (
        f"{dataset['name']}: {dataset['proposals']:,} proposals, "
        f"{dataset['participants']:,} participants, {len(seeds)} seed{'s' * (len(seeds) != 1)}, "
    )
    if pool["mode"] == "whole":
        return said + "the whole pool (every arrived proposal the participant has not seen)"
    return said + (
        f"production's pool: the {pool['fresh_limit']} oldest with fewer than {FRESH_BELOW} "
        f"votes, the {pool['consensus_contenders']} + {pool['controversy_contenders']} "
        f"contenders (for {', '.join(sorted(READS_CONTENDERS))}), a sample of "
        f"{pool['sample_limit']}\n    (--sample-limit changes this simulated sample only: the"
        f" selections at scale below run production's next_proposals_for, sample of"
        f" {PoolShape().sample_limit})"
    )


def table(report: dict[str, object]) -> str:
    """The report as a readable table."""
    columns = [
        ("dataset", "dataset"),
        ("algorithm", "algorithm"),
        ("budget", "votes/person"),
        ("consensus_precision_at_10", "P@10 consensus"),
        ("controversy_precision_at_5", "P@5 controversy"),
        ("votes_to_precision_0_9", "votes to P@10>=0.9"),
        ("votes_to_precision_0_9_quartiles", "(quartiles)"),
        ("seeds_reaching_0_9", "seeds reaching it"),
        ("votes_when_last_true_top10_arrived", "(last top-10 arrived)"),
        ("share_with_10_votes", "share >=10 votes"),
        ("selection_ms_median", "select ms (median)"),
        ("selection_ms_p99", "select ms (p99)"),
    ]
    rows = report["results"]
    assert isinstance(rows, list)
    cells = [[title for _, title in columns]]
    cells += [[_fmt(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"(select ms: timed while {report['jobs']} simulations ran at once, see --jobs;"
        " the selections at scale below are timed alone)"
    )
    verdicts = report["goal"]
    assert isinstance(verdicts, list)
    if verdicts:
        lines.append("")
        lines.append(
            f"Goal (medians over each dataset's seeds, below): adaptive needs {GOAL_REDUCTION:.0%}"
            " fewer votes than makeorg to reach P@10 >= 0.9, and is never worse than uniform:"
        )
    for verdict in verdicts:
        reduction = verdict["reduction"]
        fewer = (
            "-"
            if reduction is None
            else f"{reduction:.0%} fewer"
            if reduction >= 0
            else f"{-reduction:.0%} more"
        )
        worse = verdict["worse_than_uniform_on"]
        assert isinstance(worse, list)
        lines.append(
            f"  {verdict['dataset']}, {verdict['budget']} votes/person: adaptive "
            f"{_fmt(verdict['adaptive_votes'])} vs makeorg {_fmt(verdict['makeorg_votes'])} "
            f"({fewer}): {'met' if verdict['fewer_votes_goal_met'] else 'NOT met'}; "
            + ("worse than uniform on " + ", ".join(worse) if worse else "not worse than uniform")
        )
    datasets = report["datasets"]
    assert isinstance(datasets, list)
    lines.append("")
    lines.append("Datasets: the pool is what an algorithm chooses among at each selection")
    lines += [f"  {_describe_dataset(dataset)}" for dataset in datasets]
    if report["large_dataset"] != "included":
        lines.append(f"  {LARGE}: {report['large_dataset']}")
    lines.append("")
    lines.append(
        "Variance of a rate that showing proposals to opinion groups in proportion would remove"
        " (median over the 20 nearest the top):"
    )
    for dataset in datasets:
        gains = dataset["group_balance_gain"]
        lines.append(
            f"  {dataset['name']}: consensus {gains['consensus']:.1%}, "
            f"controversy {gains['controversy']:.1%}"
        )
    scale = report["selection_at_scale"]
    assert isinstance(scale, dict)
    lines.append("")
    lines.append(
        f"One selection of {SEQUENCE} cards among {scale['proposals']:,} proposals, by a"
        f" participant with {HISTORY} votes among {scale['votes_in_table']:,}: the algorithm"
        " alone; next_proposals_for with its reads (SQLite file)"
    )
    for name, figures in scale["by_algorithm"].items():
        lines.append(
            f"  {name:9} median {figures['median_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms;"
            f" with the reads median {figures['with_database_median_ms']:.1f} ms,"
            f" p99 {figures['with_database_p99_ms']:.1f} ms"
        )
    if scale["postgresql"] != "measured":
        lines.append(f"  PostgreSQL: {scale['postgresql']}")
        return "\n".join(lines)
    lines.append("  with the reads on PostgreSQL instead (its consult_bench database):")
    for name, figures in scale["by_algorithm"].items():
        lines.append(
            f"  {name:9} median {figures['with_postgresql_median_ms']:.1f} ms,"
            f" p99 {figures['with_postgresql_p99_ms']:.1f} ms"
        )
    return "\n".join(lines)


def postgres_left_out(postgres: str | None) -> str:
    """Why the report has no PostgreSQL timings when none was measured."""
    if postgres is None:
        return "left out (--postgres none)"
    return (
        "left out: the server at --postgres did not answer, or would not let us use or create"
        " its consult_bench database"
    )


def suite(
    quick: bool,
    seeds: int | None,
    algorithms: Sequence[str],
    extra: Sequence[Dataset] = (),
    jobs: int = 1,
    large: bool = False,
    sample_limit: int | None = None,
    postgres: str | None = None,
) -> dict[str, object]:
    """The synthetic suite plus any `extra` datasets (Polis replays), in `jobs` processes.

    `seeds` replaces every dataset's seeds, the large one's too; `large` adds the large dataset
    to a quick run (a full one has it anyway); `sample_limit` replaces production's in the
    large dataset's simulated pool; `postgres`, a server's URL, times the selections at scale
    there too if it answers (in its consult_bench database).
    """
    plan = QUICK if quick else FULL
    if large and plan.large is None:
        plan = replace(plan, large=LargeDataset())
    if seeds:
        numbered = tuple(range(1, seeds + 1))
        plan = replace(plan, seeds=numbered)
        if plan.large is not None:
            plan = replace(plan, large=replace(plan.large, seeds=numbered))
    if sample_limit is not None and plan.large is not None:
        pool = replace(plan.large.pool, sample_limit=sample_limit)
        plan = replace(plan, large=replace(plan.large, pool=pool))
    proposals = plan.proposals
    datasets: list[Dataset] = [("synthetic", lambda seed: synthetic(seed, proposals)), *extra]
    bench_url = asyncio.run(bench_database(postgres)) if postgres else None
    report = run_suite(datasets, plan, algorithms, jobs, bench_url)
    at_scale = report["selection_at_scale"]
    assert isinstance(at_scale, dict)
    if not bench_url:
        at_scale["postgresql"] = postgres_left_out(postgres)
    if sample_limit is not None and plan.large is None:
        report["large_dataset"] = f"{report['large_dataset']} (so --sample-limit changed nothing)"
    return report
