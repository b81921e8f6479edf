"""Opinion groups: crafted camps are found, too little data gives no groups (with a reason),
a seed makes the computation repeatable, k changes only after winning several times in a row,
and the vote matrix and the snapshots read and write the same on both databases."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Participant, Proposal, ProposalStatus, VoteKey
from core.results.groups import (
    NO_PROPOSALS,
    NO_SPREAD,
    TOO_FEW_PARTICIPANTS,
    KSmoother,
    NoGroups,
    OpinionGroups,
    opinion_groups,
)
from core.results.matrix import VoteMatrix, matrix_from_arrays, vote_matrix
from core.results.snapshot import continued, latest_snapshot, refresh_snapshot, results_payload
from core.voting import CastVote, import_votes
from tests.conftest import Loader
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]


def camps(
    sizes: tuple[int, ...] = (30, 20), proposals: int = 12, noise: float = 0.1, seed: int = 1
) -> tuple[VoteMatrix, list[int]]:
    """Camps of people who vote alike within and opposite across: camp c agrees with the
    proposals of block c and disagrees with the others'; `noise` of votes flip at random."""
    rng = np.random.default_rng(seed)
    blocks = np.arange(proposals) % len(sizes)
    people, columns, values, camp_of = [], [], [], []
    person = 0
    for camp, size in enumerate(sizes):
        for _ in range(size):
            for column in range(proposals):
                vote = 1 if blocks[column] == camp else -1
                if rng.random() < noise:
                    vote = int(rng.choice([-vote, 0]))
                people.append(person)
                columns.append(column)
                values.append(vote)
            camp_of.append(camp)
            person += 1
    matrix = matrix_from_arrays(
        np.array(people),
        np.array(columns),
        np.array(values, dtype=np.int8),
        [f"p{c}" for c in range(proposals)],
        unique=True,
    )
    return matrix, camp_of


def same_partition(labels: np.ndarray, truth: list[int]) -> bool:
    pairs = set(zip(labels.tolist(), truth, strict=True))
    return len(pairs) == len(set(truth)) == len({a for a, _ in pairs})


def test_two_camps_make_two_groups_with_the_right_members() -> None:
    matrix, truth = camps()
    found = opinion_groups(matrix, seed=3)
    assert isinstance(found, OpinionGroups)
    assert found.k == 2
    assert found.sizes == [30, 20]  # numbered by size
    assert same_partition(found.labels, truth)
    assert found.smoother == KSmoother(last_k=2, last_k_count=1, smoothed_k=2)


def test_three_camps_make_three_groups() -> None:
    matrix, truth = camps(sizes=(25, 20, 15), proposals=15, noise=0.05)
    found = opinion_groups(matrix, seed=5)
    assert isinstance(found, OpinionGroups)
    assert found.k == 3
    assert same_partition(found.labels, truth)


def test_participants_with_too_few_votes_are_not_clustered() -> None:
    matrix, _ = camps(sizes=(20, 20), proposals=10)
    # Twelve more people, who voted on 6 of 10 proposals (fewer than min(7, 10)).
    extra = np.repeat(np.arange(1000, 1012), 6)
    columns = np.tile(np.arange(6), 12)
    people = np.concatenate([matrix.participants[matrix.rows], extra])
    both = matrix_from_arrays(
        people,
        np.concatenate([matrix.columns, columns]),
        np.concatenate([matrix.values, np.ones(72, dtype=np.int8)]),
        matrix.refs,
        unique=True,
    )
    found = opinion_groups(both, seed=1)
    assert isinstance(found, OpinionGroups)
    assert int(found.clustered.sum()) == 40
    assert (found.labels[both.participants >= 1000] == -1).all()


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (camps(sizes=(4, 4))[0], TOO_FEW_PARTICIPANTS),  # 8 people
        (camps(proposals=1)[0], NO_PROPOSALS),
        (camps(sizes=(50,), noise=0.0)[0], NO_SPREAD),  # everyone voted alike
    ],
    ids=["few-people", "one-proposal", "no-spread"],
)
def test_too_little_gives_no_groups_and_a_reason(matrix: VoteMatrix, reason: str) -> None:
    previous = KSmoother(last_k=2, last_k_count=3, smoothed_k=2)
    found = opinion_groups(matrix, seed=1, previous=previous)
    assert isinstance(found, NoGroups)
    assert found.reason == reason
    assert found.smoother == previous  # kept for when there is enough


def test_too_few_votes_each_gives_no_groups() -> None:
    people = np.repeat(np.arange(60), 3)  # sixty people, three votes each, on 20 proposals
    columns = np.tile(np.arange(3), 60)
    matrix = matrix_from_arrays(
        people, columns, np.ones(180, dtype=np.int8), [f"p{c}" for c in range(20)], unique=True
    )
    found = opinion_groups(matrix, seed=1)
    assert isinstance(found, NoGroups) and found.reason == TOO_FEW_PARTICIPANTS
    nobody = matrix_from_arrays(people[:0], columns[:0], np.ones(0, np.int8), ["a", "b", "c"])
    assert opinion_groups(nobody, seed=1) == NoGroups(TOO_FEW_PARTICIPANTS, 0, KSmoother())
    assert opinion_groups(
        matrix_from_arrays(people[:0], columns[:0], np.ones(0, np.int8), []), seed=1
    ) == NoGroups(NO_PROPOSALS, 0, KSmoother())


def test_the_same_seed_gives_the_same_groups() -> None:
    matrix, _ = camps(sizes=(40, 35, 25), proposals=20, noise=0.3)
    first, second = (opinion_groups(matrix, seed=11) for _ in range(2))
    assert isinstance(first, OpinionGroups) and isinstance(second, OpinionGroups)
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.positions, second.positions)
    assert first.silhouettes == second.silhouettes


def test_a_new_k_is_taken_only_after_winning_four_times_in_a_row() -> None:
    smoother = KSmoother(last_k=3, last_k_count=5, smoothed_k=3)
    available = {2, 3, 4, 5}
    seen = []
    for _ in range(4):
        smoother = smoother.after(2, available)
        seen.append(smoother.smoothed_k)
    assert seen == [3, 3, 3, 2]
    # An interruption starts the count again.
    smoother = KSmoother(last_k=2, last_k_count=2, smoothed_k=3).after(4, available)
    assert smoother == KSmoother(last_k=4, last_k_count=1, smoothed_k=3)
    # A k no longer computed (fewer base clusters) cannot be kept.
    assert KSmoother(last_k=5, last_k_count=1, smoothed_k=5).after(2, {2}).smoothed_k == 2


def test_groups_keep_the_previous_k_until_the_new_one_has_won_enough() -> None:
    matrix, _ = camps()
    previous = KSmoother(last_k=3, last_k_count=6, smoothed_k=3)
    found = opinion_groups(matrix, seed=3, previous=previous)
    assert isinstance(found, OpinionGroups)
    assert found.k == 3  # two camps, but k=2 has won once only
    assert found.smoother == KSmoother(last_k=2, last_k_count=1, smoothed_k=3)
    for _ in range(3):
        found = opinion_groups(matrix, seed=3, previous=found.smoother)
        assert isinstance(found, OpinionGroups)
    assert found.k == 2


def test_groups_keep_their_numbers_from_one_snapshot_to_the_next() -> None:
    matrix, _ = camps(sizes=(30, 20))
    first = opinion_groups(matrix, seed=3)
    assert isinstance(first, OpinionGroups)
    payload = results_payload(matrix, first, min_group_size=1)
    assert first.labels[0] == 0  # camp 0, the larger, is group 0
    # Camp 1 grows past camp 0: by size it would now be group 0.
    grown, truth = camps(sizes=(30, 45))
    found = opinion_groups(grown, seed=3)
    assert isinstance(found, OpinionGroups) and found.sizes == [45, 30]
    kept = continued(found, grown, payload)
    assert kept.sizes == [30, 45] and kept.labels[0] == 0
    assert same_partition(kept.labels, truth)
    assert continued(found, grown, None) is found


# --- on the databases -------------------------------------------------------------------------


async def _people(sessions: Sessions, clock: Clock, n: int) -> list[int]:
    async with sessions() as session, session.begin():
        people = [Participant(created_at=clock()) for _ in range(n)]
        session.add_all(people)
        await session.flush()
        return [p.id for p in people if p.id is not None]


async def _proposals(sessions: Sessions) -> dict[str, int]:
    async with sessions() as session:
        found = await session.exec(select(Proposal))
        return {p.ref: p.id for p in found if p.ref and p.id}


async def _cast(sessions: Sessions, clock: Clock, votes: list[CastVote]) -> None:
    async with sessions() as session, session.begin():
        await import_votes(session, votes, clock())


async def test_the_vote_matrix_reads_accepted_proposals_votes(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    ids = await _proposals(sessions)
    async with sessions() as session, session.begin():
        for ref in ("p14.fr", "p14.en"):
            refused = await session.get(Proposal, ids[ref])
            assert refused is not None
            refused.status = ProposalStatus.REFUSED
            session.add(refused)
    alice, bob = await _people(sessions, clock, 2)
    await _cast(
        sessions,
        clock,
        [
            CastVote(alice, ids["p1.fr"], VoteKey.AGREE),
            CastVote(alice, ids["p2.en"], VoteKey.NEUTRAL),
            CastVote(bob, ids["p2.fr"], VoteKey.DISAGREE),
            CastVote(bob, ids["p14.fr"], VoteKey.AGREE),  # refused: not a column
        ],
    )
    async with sessions() as session:
        matrix = await vote_matrix(session, consultation)
    assert matrix.refs == tuple(f"p{i}" for i in range(1, 14))  # translations are one column
    assert matrix.participants.tolist() == [alice, bob]
    cells = {
        (int(matrix.participants[r]), matrix.refs[c], int(v))
        for r, c, v in zip(matrix.rows, matrix.columns, matrix.values, strict=True)
    }
    assert cells == {(alice, "p1", 1), (alice, "p2", 0), (bob, "p2", -1)}


async def test_snapshots_store_groups_and_continue_the_smoother(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    ids = await _proposals(sessions)
    camp_matrix, _ = camps(sizes=(12, 10), proposals=14, noise=0.05)
    people = await _people(sessions, clock, 22)
    await _cast(
        sessions,
        clock,
        [
            CastVote(
                people[int(camp_matrix.participants[r])],
                ids[f"p{c + 1}.fr"],
                {1: VoteKey.AGREE, -1: VoteKey.DISAGREE, 0: VoteKey.NEUTRAL}[int(v)],
            )
            for r, c, v in zip(
                camp_matrix.rows, camp_matrix.columns, camp_matrix.values, strict=True
            )
        ],
    )
    for _ in range(2):
        async with sessions() as session, session.begin():
            await refresh_snapshot(session, consultation, seed=7, now=clock())
        clock.advance(minutes=5)
    assert consultation.id is not None
    async with sessions() as session:
        latest = await latest_snapshot(session, consultation.id)
    assert latest is not None and latest.seed == 7
    payload = latest.payload
    assert payload["k"]["chosen"] == 2
    assert payload["k"]["smoother"] == {"last_k": 2, "last_k_count": 2, "smoothed_k": 2}
    assert [g["size"] for g in payload["groups"]] == [12, 10]
    assert payload["participants"] == 22 and payload["clustered"] == 22
    first = payload["proposals"][0]
    assert first["ref"] == "p1" and sum(first["counts"]) == 22
    assert sum(sum(g) for g in first["groups"]) == 22
    assert 0 < first["consensus"]["agree"] < 1
    assert all(g["representative"] for g in payload["groups"])
    # Nothing that names a person: only counts and proposal refs.
    assert "participant" not in str(payload).replace("participants", "")
