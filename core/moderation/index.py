"""Keeping the similarity index (`ProposalTerm`, `TermCount`) in step with the proposals.

Called from the ORM's flush (`core.models` listens for every proposal inserted or updated),
on the flush's connection, so the index is written in the proposal's own transaction whatever
code wrote it: a participant, a seed, an import, an edit at acceptance, a decision. This
module does not import `core.models` (which calls it): it reads the tables from the metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Connection, Table, bindparam, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from core.moderation.text import terms

ALL = ""  # TermCount's row counting the consultation's proposals


class Written(Protocol):
    """What the index reads of a proposal (`core.models.Proposal`)."""

    id: int | None
    consultation_id: int
    text: str
    locale: str
    status: str


@cache
def _tables() -> tuple[Table, Table]:
    return SQLModel.metadata.tables["proposalterm"], SQLModel.metadata.tables["termcount"]


@cache
def _add_terms_statement() -> Any:
    terms_table, _ = _tables()
    return terms_table.insert().values(
        consultation_id=bindparam("c"),
        term=bindparam("t"),
        proposal_id=bindparam("p"),
        status=bindparam("s"),
    )


@cache
def _count_statement(dialect: str) -> Any:
    """One more proposal with the term: an upsert (the first one inserts its row)."""
    _, counts = _tables()
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(counts).values(
        consultation_id=bindparam("c"), term=bindparam("t"), proposals=1
    )
    return statement.on_conflict_do_update(
        index_elements=[counts.c.consultation_id, counts.c.term],
        set_={"proposals": counts.c.proposals + 1},
    )


def _add_terms(
    connection: Connection, proposal: Written, added: Iterable[str], *, new: bool
) -> None:
    assert proposal.id is not None
    added = sorted(added)
    key = {"c": proposal.consultation_id, "p": proposal.id, "s": proposal.status}
    if added:
        connection.execute(_add_terms_statement(), [{**key, "t": term} for term in added])
    # Sorted: concurrent writers lock the counts' rows in one order (no deadlock on PostgreSQL).
    counted = [
        {"c": proposal.consultation_id, "t": term} for term in ([ALL] if new else []) + added
    ]
    if counted:
        connection.execute(_count_statement(connection.dialect.name), counted)


def index_proposal(connection: Connection, proposal: Written) -> None:
    """Index a proposal just inserted: its terms, and one more proposal in the counts."""
    _add_terms(connection, proposal, terms(proposal.text, proposal.locale), new=True)


def reindex_if_changed(connection: Connection, proposal: Written) -> None:
    """After an update: a new status is copied to the proposal's terms; a new text (an edit
    at acceptance, a seed rewritten) drops the terms it lost and adds the ones it gained."""
    assert proposal.id is not None
    terms_table, counts = _tables()
    changed = inspect(proposal).attrs
    if changed.status.history.has_changes():
        connection.execute(
            update(terms_table)
            .where(terms_table.c.proposal_id == proposal.id)
            .values(status=proposal.status)
        )
    if not changed.text.history.has_changes():
        return
    old = set(
        connection.execute(
            select(terms_table.c.term).where(terms_table.c.proposal_id == proposal.id)
        ).scalars()
    )
    new = terms(proposal.text, proposal.locale)
    lost = sorted(old - new)
    if lost:
        connection.execute(
            terms_table.delete().where(
                terms_table.c.proposal_id == proposal.id, terms_table.c.term.in_(lost)
            )
        )
        connection.execute(
            update(counts)
            .where(counts.c.consultation_id == proposal.consultation_id, counts.c.term.in_(lost))
            .values(proposals=counts.c.proposals - 1)
        )
    _add_terms(connection, proposal, new - old, new=False)


def index_rows(
    proposals: Iterable[tuple[int, int, str, str, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The index of proposals loaded without the ORM (a migration, a bulk load), from their
    (id, consultation_id, text, locale, status): rows for ProposalTerm and for TermCount."""
    postings: list[dict[str, Any]] = []
    counts: Counter[tuple[int, str]] = Counter()
    for proposal_id, consultation_id, text, locale, status in proposals:
        counts[(consultation_id, ALL)] += 1
        for term in sorted(terms(text, locale)):
            postings.append(
                {
                    "proposal_id": proposal_id,
                    "term": term,
                    "consultation_id": consultation_id,
                    "status": status,
                }
            )
            counts[(consultation_id, term)] += 1
    totals = [{"consultation_id": c, "term": t, "proposals": n} for (c, t), n in counts.items()]
    return postings, totals
