"""Simulated populations for the sequencing benchmark: who votes how, and the truth.

- synthetic: latent opinion groups of different sizes; proposals with true agree / disagree /
  neutral probabilities per group (consensual, divisive between groups, rejected, mostly
  neutral, a few very popular, and near-duplicate pairs), most of them arriving while the
  consultation runs.
- polis: a real conversation in the Polis export format, replayed: each simulated participant
  is one of the conversation's voters, drawn at random (with replacement, so that a run can
  have more participants than the conversation had). Where that voter voted on the card, the
  vote is their real one; votes they never cast come from a fitted model of the population,
  the same for every algorithm: a latent-class model whose classes are the opinion groups
  Polis computed (participants it did not cluster form one more class); each class votes on
  each comment agree / disagree / pass with the rates observed in that class, smoothed towards
  the comment's overall rates (a Dirichlet prior worth 2 votes). Truth is what this replayed
  population votes on average: per comment, the voters' real votes and, for those who did not
  vote on it, their class's fitted rates, averaged over the voters. The moderator's seed
  comments are the organiser's proposals (no author, as `consult import polis` makes them), so
  the one-card-per-author rule of a sequence does not ration them as if one participant had
  written them all.

The true consensus set is the 10 proposals with the highest population agree rate; the true
controversy set, the 5 with the highest min(agree, disagree).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.polis import PolisConversation, PolisFormatError

CONSENSUS_K = 10
CONTROVERSY_K = 5


@dataclass(frozen=True)
class Voter:
    """A replayed participant: their class, and the votes they really cast (by proposal)."""

    group: int
    votes: dict[int, str]  # proposal -> "agree", "disagree" or "neutral"


@dataclass(frozen=True)
class Population:
    """Who votes how: per proposal and per group, P(agree) and P(disagree) (the rest: neutral),
    the truth the runs are scored against.

    A replayed conversation also has its `voters`, whom the simulated participants are drawn
    from, and the rates their votes never cast are drawn with (`unvoted_agree`,
    `unvoted_disagree`); `agree` and `disagree` are then the class averages of both.
    """

    name: str
    shares: tuple[float, ...]
    agree: tuple[tuple[float, ...], ...]
    disagree: tuple[tuple[float, ...], ...]
    arrival: tuple[float, ...]  # when each proposal appears, as a share of the participants
    texts: tuple[str, ...]
    authors: tuple[int | None, ...]
    truth: str
    voters: tuple[Voter, ...] = ()
    unvoted_agree: tuple[tuple[float, ...], ...] = ()
    unvoted_disagree: tuple[tuple[float, ...], ...] = ()

    def rates_for_draws(
        self,
    ) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
        """Per proposal and group, P(agree) and P(disagree) of a vote the model draws."""
        if self.voters:
            return self.unvoted_agree, self.unvoted_disagree
        return self.agree, self.disagree

    def population_rate(self, rates: tuple[tuple[float, ...], ...], p: int) -> float:
        return sum(share * rate for share, rate in zip(self.shares, rates[p], strict=True))

    def balance_gain(self, rates: tuple[tuple[float, ...], ...], p: int) -> float:
        """The share of the variance of proposal `p`'s pooled rate that showing it to each
        opinion group in proportion to its size would remove (stratified sampling: the
        between-group part, sum of share * (group rate - rate)^2, over rate * (1 - rate)).

        The most a sequencer could gain from knowing each participant's group, with the group
        known exactly: the votes needed for a given precision shrink by this share at best.
        """
        rate = self.population_rate(rates, p)
        between = sum(w * (r - rate) ** 2 for w, r in zip(self.shares, rates[p], strict=True))
        return between / (rate * (1 - rate))

    def balance_gains(self) -> dict[str, float]:
        """Median `balance_gain` over the 20 proposals nearest the top of each ranking."""
        proposals = range(len(self.agree))
        agree = [self.population_rate(self.agree, p) for p in proposals]
        disagree = [self.population_rate(self.disagree, p) for p in proposals]
        by_agree = sorted(proposals, key=lambda p: -agree[p])[:20]
        by_split = sorted(proposals, key=lambda p: -min(agree[p], disagree[p]))[:20]
        return {
            "consensus": statistics.median(self.balance_gain(self.agree, p) for p in by_agree),
            "controversy": statistics.median(
                max(self.balance_gain(self.agree, p), self.balance_gain(self.disagree, p))
                for p in by_split
            ),
        }

    def true_sets(self) -> tuple[set[int], set[int]]:
        proposals = range(len(self.agree))
        agree = [self.population_rate(self.agree, p) for p in proposals]
        disagree = [self.population_rate(self.disagree, p) for p in proposals]
        split = [min(a, d) for a, d in zip(agree, disagree, strict=True)]
        return top(agree, CONSENSUS_K), top(split, CONTROVERSY_K)


Dataset = tuple[str, Callable[[int], "Population"]]


def top(values: Sequence[float], k: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])


def synthetic(seed: int, proposals: int = 240) -> Population:
    rng = random.Random(seed)
    shares = (0.5, 0.3, 0.2)
    agree: list[tuple[float, ...]] = []
    disagree: list[tuple[float, ...]] = []
    texts: list[str] = []
    kinds = ["mixed"] * 10 + ["consensus"] * 2 + ["divisive"] * 3 + ["rejected"] * 2
    kinds += ["neutral"] * 2 + ["popular"]
    for p in range(proposals):
        kind = rng.choice(kinds)
        neutral = rng.uniform(0.45, 0.7) if kind == "neutral" else rng.uniform(0.05, 0.3)
        if kind == "consensus":
            leans = [rng.uniform(0.6, 0.95) for _ in shares]
        elif kind == "popular":
            leans = [rng.uniform(0.9, 0.99) for _ in shares]
        elif kind == "rejected":
            leans = [rng.uniform(0.03, 0.3) for _ in shares]
        elif kind == "divisive":
            leans = [rng.uniform(0.8, 0.95), rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.7)]
            rng.shuffle(leans)
        else:
            centre = rng.uniform(0.2, 0.8)
            leans = [min(0.97, max(0.03, rng.gauss(centre, 0.12))) for _ in shares]
        agree.append(tuple((1 - neutral) * lean for lean in leans))
        disagree.append(tuple((1 - neutral) * (1 - lean) for lean in leans))
        texts.append(f"proposal {p} " + "".join(rng.choice("abcdefghij") for _ in range(12)))
    for original in rng.sample(range(proposals), proposals // 20):  # near-duplicates
        copy = rng.randrange(proposals)
        agree[copy], disagree[copy] = agree[original], disagree[original]
        texts[copy] = texts[original] + " !"
    arrival = tuple(0.0 if rng.random() < 0.2 else rng.uniform(0.0, 0.7) for _ in texts)
    authors = tuple(rng.randrange(proposals) if rng.random() < 0.9 else None for _ in texts)
    return Population(
        name=f"synthetic-{seed}",
        shares=shares,
        agree=tuple(agree),
        disagree=tuple(disagree),
        arrival=arrival,
        texts=tuple(texts),
        authors=authors,
        truth="synthetic: 3 latent groups (50/30/20%), true rates per proposal and group",
    )


def from_polis(conversation: PolisConversation, name: str) -> Population:
    """The fitted latent-class population of a real conversation (see the module docstring)."""
    comments = [c for c in conversation.comments if c.moderated != -1]
    if not comments or not conversation.voters:
        missing = "comment that was not rejected" if not comments else "voter"
        raise PolisFormatError(f"{name}: nothing to replay, not one {missing}")
    classes = sorted({g for g in conversation.groups.values() if g is not None})
    index = {g: i for i, g in enumerate(classes)}
    unclustered = len(classes)
    members = [0] * (len(classes) + 1)
    of: dict[int, int] = {}
    for voter in conversation.voters:
        group = conversation.groups.get(voter)
        of[voter] = unclustered if group is None else index[group]
        members[of[voter]] += 1
    if members[unclustered] == 0:
        members.pop()
    position = {c.id: i for i, c in enumerate(comments)}
    tallies = [[[0, 0, 0] for _ in members] for _ in comments]  # agree, disagree, pass
    keys = ("agree", "disagree", "neutral")
    cast: dict[int, dict[int, str]] = {voter: {} for voter in of}
    for (voter, comment), vote in conversation.votes.items():
        if comment in position and voter in of:
            key = {1: 0, -1: 1, 0: 2}[vote]
            tallies[position[comment]][of[voter]][key] += 1
            cast[voter][position[comment]] = keys[key]
    fitted_agree, fitted_disagree = [], []
    for per_class in tallies:
        total = [sum(column) for column in zip(*per_class, strict=True)]
        overall = [(k + 1) / (sum(total) + 3) for k in total]
        rates = [
            [(k + 2 * prior) / (sum(counts) + 2) for k, prior in zip(counts, overall, strict=True)]
            for counts in per_class
        ]
        fitted_agree.append(tuple(r[0] for r in rates))
        fitted_disagree.append(tuple(r[1] for r in rates))

    def truth(fitted: list[tuple[float, ...]], key: int) -> tuple[tuple[float, ...], ...]:
        """Per comment and class: the real votes of those who cast one, the fitted rate for
        the others, over the class's voters."""
        return tuple(
            tuple(
                (counts[key] + (size - sum(counts)) * fitted[p][c]) / size
                for c, (counts, size) in enumerate(zip(per_class, members, strict=True))
            )
            for p, per_class in enumerate(tallies)
        )

    first = min(c.timestamp for c in comments)
    span = max(max(c.timestamp for c in comments) - first, 1)
    total_members = sum(members)
    return Population(
        name=name,
        shares=tuple(m / total_members for m in members),
        agree=truth(fitted_agree, 0),
        disagree=truth(fitted_disagree, 1),
        arrival=tuple(0.7 * (c.timestamp - first) / span for c in comments),
        texts=tuple(c.text for c in comments),
        authors=tuple(c.participant_author for c in comments),
        truth=(
            f"Polis conversation {name} replayed: participants drawn from its {len(of)} voters,"
            " with their real votes where they voted; the others from a latent-class model,"
            f" classes = Polis opinion groups ({len(members)} with the unclustered), per-class"
            " agree/disagree/pass rates of the observed votes smoothed towards the comment's"
            " overall rates (prior of 2 votes); truth = the voters' average of both"
        ),
        voters=tuple(Voter(of[voter], cast[voter]) for voter in sorted(of)),
        unvoted_agree=tuple(fitted_agree),
        unvoted_disagree=tuple(fitted_disagree),
    )


def polis_dataset(name: str, conversation: PolisConversation) -> Dataset:
    """A replayed conversation: the same fitted population for every seed."""
    population = from_polis(conversation, name)
    return name, lambda _seed: population
