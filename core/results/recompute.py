"""The periodic recomputation of a consultation's results into a stored snapshot.

`recompute_results` assesses trust (storing who is untrusted, `core.results.trust`), computes
the opinion groups (`core.results.snapshot.snapshot_payload`, leaving untrusted votes out when
the consultation says so), and adds to that snapshot's payload, under `dashboard`, what the
console's Results and Live pages and the API show, so that none of them computes anything on a
request:

- `reports`: the report (`core.report`) per language, `all` votes and, when someone is
  untrusted, `trusted` (their votes left out), for the dashboard's trust filter;
- `breakdowns`: per profile question, the report's breakdown by its answers (segments below
  `min_segment_size` hidden there), labelled in the default language; `breakdown_labels`, per
  language, each question's label and its answers' (`stored_breakdown` puts them on): the
  figures are the same in every language, and a breakdown scans the votes;
- `trust`: the counts of `TrustSummary`; `weighting`: the weighted figures or None, or
  `weighting_problem` when a declared margin cannot be reached;
- `qualifications`: per proposal ref, its qualifications' counts by key;
- `live`: `core.results.live.live_figures`.

`due` says which consultations need a new snapshot: an open one whose latest is older than
the interval, any other (not a draft) that changed since its latest, and any without one. A
snapshot `consult results --refresh` stored (groups only, no `dashboard`) counts as the latest
too: the pages say "not yet" until the next interval. Only the latest KEEP snapshots of a
consultation are kept: pages read the latest only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of
from core.models import (
    Consultation,
    Proposal,
    ProposalStatus,
    Qualification,
    ResultSnapshot,
    Status,
)
from core.report import consultation_report, consultation_reports, idea_refs
from core.results.live import live_figures
from core.results.snapshot import DEFAULT_SEED, snapshot_payload
from core.results.trust import Trust, consultation_trust, store_trust
from core.results.votes import read_votes
from core.results.weighting import UnreachableMargin, weighted_figures

KEEP = 3
DASHBOARD = "dashboard"


async def due(session: AsyncSession, now: datetime, every: timedelta) -> list[Consultation]:
    """The consultations whose results should be computed again at `now` (module docstring).

    One query for the latest snapshot's time of each: the scheduler asks every few seconds,
    and a snapshot's payload can be large."""
    latest = await session.exec(
        select(ResultSnapshot.consultation_id, func.max(ResultSnapshot.computed_at)).group_by(
            col(ResultSnapshot.consultation_id)
        )
    )
    computed = {cid: at for cid, at in latest.all()}
    found = await session.exec(select(Consultation).where(col(Consultation.status) != Status.DRAFT))
    chosen = []
    for consultation in found.all():
        at = computed.get(consultation.id or 0)
        if at is not None and at.tzinfo is None:  # SQLite's max() gives the stored text back
            at = at.replace(tzinfo=UTC)
        if at is None:
            chosen.append(consultation)
        elif consultation.status in (Status.OPEN, Status.VOTE_ONLY):
            if at + every <= now:
                chosen.append(consultation)
        elif at < consultation.updated_at:
            chosen.append(consultation)
    return chosen


@dataclass(frozen=True)
class Computed:
    """A consultation's results as computed, before they are stored (`store_results`)."""

    trust: Trust
    payload: dict[str, Any]
    seed: int


async def recompute_results(
    session: AsyncSession,
    consultation: Consultation,
    now: datetime,
    *,
    seed: int = DEFAULT_SEED,
    lap: Callable[[str], None] | None = None,
) -> ResultSnapshot:
    """Compute the consultation's results and store them as its latest snapshot, in the
    caller's transaction (see the module docstring for the payload's `dashboard`).

    `lap(stage)` is called as each stage ends (`consult bench results` times them)."""
    computed = await compute_results(session, consultation, now, seed=seed, lap=lap)
    return await store_results(session, consultation, computed, now, lap=lap)


async def compute_results(
    session: AsyncSession,
    consultation: Consultation,
    now: datetime,
    *,
    seed: int = DEFAULT_SEED,
    lap: Callable[[str], None] | None = None,
) -> Computed:
    """Compute the consultation's results, reading only: the results worker does it in a
    transaction that reads (on SQLite, one that holds no write lock, so that votes go on
    being cast meanwhile), then stores them in a short one (`store_results`)."""
    assert consultation.id is not None
    done = lap or (lambda stage: None)
    # Every vote read once, for trust, the groups, the timelines and the weighting
    # (`core.results.votes`).
    votes = await read_votes(session, consultation.id)
    done("read votes")
    trust = await consultation_trust(session, consultation, votes=votes)
    done("trust")
    exclude = trust.summary.exclude_untrusted
    payload = await snapshot_payload(
        session,
        consultation,
        seed=seed,
        votes=votes,
        without=trust.untrusted if exclude else (),
        lap=lap,
    )
    reports: dict[str, dict[str, Any]] = {"all": {}, "trusted": {}}
    # The dashboard's trust filter shows the scores without them even when the consultation
    # keeps them in.
    trusted_only = trust.theirs
    for locale, report in (await consultation_reports(session, consultation, now=now)).items():
        reports["all"][locale] = report.as_dict()
    if trust.untrusted:
        trusted = await consultation_reports(session, consultation, now=now, left_out=trusted_only)
        for locale, report in trusted.items():
            reports["trusted"][locale] = report.as_dict()
    done("reports")
    left_out = trust.left_out if exclude else None
    breakdowns = {}
    questions = profile_questions_of(consultation)
    for question in questions:
        report = await consultation_report(
            session,
            consultation,
            locale=consultation.default_locale,
            segment_by=question.id,
            now=now,
            left_out=left_out,
            columns=votes,
        )
        if report.breakdown is not None:
            breakdowns[question.id] = report.breakdown.as_dict()
    done("breakdowns")
    weighting: dict[str, Any] | None = None
    problem: dict[str, str] | None = None
    try:
        weighed = await weighted_figures(
            session,
            consultation,
            left_out=trust.untrusted if exclude else frozenset(),
            votes=votes,
        )
        weighting = None if weighed is None else weighed.as_dict()
    except UnreachableMargin as error:
        problem = {"question": error.question, "option": error.option}
    done("weighting")
    qualifications = await _qualifications(session, consultation)
    live = await live_figures(session, consultation, votes=votes)
    done("qualifications, live")
    payload = payload | {
        DASHBOARD: {
            "reports": reports,
            "breakdowns": breakdowns,
            "breakdown_labels": {
                # as `core.report` labels a breakdown: the id where a language has no label
                locale: {
                    question.id: {
                        "label": question.label.get(locale, question.id),
                        "options": {o.id: o.label.get(locale, o.id) for o in question.options},
                    }
                    for question in questions
                }
                for locale in consultation.locales
            },
            "trust": trust.summary.as_dict(),
            "weighting": weighting,
            "weighting_problem": problem,
            "qualifications": qualifications,
            "live": live,
        }
    }
    return Computed(trust, payload, seed)


async def store_results(
    session: AsyncSession,
    consultation: Consultation,
    computed: Computed,
    now: datetime,
    *,
    lap: Callable[[str], None] | None = None,
) -> ResultSnapshot:
    """Store computed results: who is untrusted, and the snapshot, keeping the latest KEEP;
    in the caller's transaction."""
    assert consultation.id is not None
    await store_trust(session, consultation, computed.trust, now)
    snapshot = ResultSnapshot(
        consultation_id=consultation.id,
        computed_at=now,
        payload=computed.payload,
        seed=computed.seed,
    )
    session.add(snapshot)
    await session.flush()
    await _prune(session, consultation.id)
    if lap is not None:
        lap("snapshot write")
    return snapshot


def stored_breakdown(
    dashboard: dict[str, Any], question: str, locale: str
) -> dict[str, Any] | None:
    """The stored breakdown by `question` (`Breakdown.as_dict()`) labelled in `locale`, from
    a snapshot's `dashboard`; None when it holds none in that language (the question, or the
    language, came after it was computed: the next computation stores it)."""
    breakdown: dict[str, Any] | None = dashboard["breakdowns"].get(question)
    labels = dashboard.get("breakdown_labels", {}).get(locale, {}).get(question)
    if breakdown is None or labels is None:
        return None
    segments = [
        segment | {"label": labels["options"].get(segment["option"], segment["option"])}
        for segment in breakdown["segments"]
    ]
    return breakdown | {"label": labels["label"], "segments": segments}


def groups_only(snapshot: ResultSnapshot) -> dict[str, Any]:
    """A snapshot's payload without what only the dashboard reads (`DASHBOARD`): the groups
    and what they agree on, as `core.results.snapshot` describes them."""
    return {key: value for key, value in snapshot.payload.items() if key != DASHBOARD}


async def _qualifications(
    session: AsyncSession, consultation: Consultation
) -> dict[str, dict[str, int]]:
    """Per accepted proposal's reported ref, its qualifications' counts by key."""
    accepted = await session.exec(
        select(Proposal).where(
            Proposal.consultation_id == consultation.id,
            Proposal.status == ProposalStatus.ACCEPTED,
        )
    )
    refs = idea_refs(accepted, consultation.locales)
    if not refs:
        return {}
    grouped = await session.exec(
        select(Qualification.proposal_id, Qualification.key, func.count())
        .where(col(Qualification.proposal_id).in_(list(refs)))
        .group_by(col(Qualification.proposal_id), col(Qualification.key))
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for proposal_id, key, count in grouped:
        ref = refs[proposal_id]
        counts[ref][key] = counts[ref].get(key, 0) + int(count)
    return dict(counts)


async def _prune(session: AsyncSession, consultation_id: int) -> None:
    """Drop all but the latest KEEP snapshots of the consultation."""
    kept = await session.exec(
        select(ResultSnapshot.id)
        .where(ResultSnapshot.consultation_id == consultation_id)
        .order_by(col(ResultSnapshot.computed_at).desc(), col(ResultSnapshot.id).desc())
        .limit(KEEP)
    )
    ids = [i for i in kept.all() if i is not None]
    await session.exec(
        delete(ResultSnapshot).where(
            col(ResultSnapshot.consultation_id) == consultation_id,
            col(ResultSnapshot.id).not_in(ids),
        )
    )
