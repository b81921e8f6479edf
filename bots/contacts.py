"""WhatsApp lists of people the bot has not met, imported from a CRM's CSV file
(`consult broadcast contacts import`).

The file is read whole and checked before anything is written: one bad line and nothing is
imported, every bad line being said by its number. A number is kept as E.164 digits (the
WhatsApp id the platform gives the same person when they write), under the keyed hash a
participant on WhatsApp gets (`core.identity`), so a contact who joins is recognised.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.identity import identity_hash
from core.models import Consultation, Contact

CHANNEL = "whatsapp"
COLUMNS = ("phone", "opted_in", "locale")
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_YES = {"yes", "y", "true", "1", "oui", "o", "x"}
_NO = {"no", "n", "false", "0", "non", ""}
_SEPARATORS = re.compile(r"[\s().\-/]")
_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")


class ContactsError(ValueError):
    """What is wrong in the file: (line number, msgid, values) for each bad line; line 0 is
    the file itself (unreadable, no header)."""

    def __init__(self, lines: list[tuple[int, str, dict[str, Any]]]) -> None:
        super().__init__(f"{len(lines)} bad line(s)")
        self.lines = lines


@dataclass(frozen=True)
class ContactRow:
    digits: str
    opted_in: bool
    locale: str | None


@dataclass(frozen=True)
class ImportSummary:
    added: int
    updated: int
    opted_in: int


def e164_digits(phone: str) -> str | None:
    """A phone number as E.164 digits (country code first, no '+'), or None when it is not
    one: a national number ("06 12 34 56 78") does not say its country, so it is refused
    rather than guessed."""
    text = _SEPARATORS.sub("", phone.strip())
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    else:
        return None
    # E.164: at most 15 digits, a country code never starts with 0; 8 is the shortest in use.
    if not (text.isascii() and text.isdecimal()) or not 8 <= len(text) <= 15 or text[0] == "0":
        return None
    return text


def read_contacts(path: Path) -> list[ContactRow]:
    """The file's contacts, one per number (a number listed twice: its last line counts);
    ContactsError naming every bad line."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as source:
            lines = list(csv.reader(source))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ContactsError([(0, "contacts.unreadable", {"error": str(error)})]) from None
    if not lines:
        raise ContactsError([(0, "contacts.no_header", {"columns": ", ".join(COLUMNS)})])
    header = [name.strip().lower() for name in lines[0]]
    if "phone" not in header or "opted_in" not in header:
        raise ContactsError([(1, "contacts.no_header", {"columns": ", ".join(COLUMNS)})])
    where = {name: header.index(name) for name in COLUMNS if name in header}
    rows: dict[str, ContactRow] = {}
    bad: list[tuple[int, str, dict[str, Any]]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in line):
            continue  # a blank line, as spreadsheets leave at the end

        def cell(name: str, line: list[str] = line) -> str:
            index = where.get(name)
            return line[index].strip() if index is not None and index < len(line) else ""

        digits = e164_digits(cell("phone"))
        if digits is None:
            bad.append((number, "contacts.bad_phone", {}))  # the number itself is not repeated
            continue
        consent = cell("opted_in").lower()
        if consent not in _YES | _NO:
            bad.append((number, "contacts.bad_opt_in", {"value": cell("opted_in")[:20]}))
            continue
        locale = cell("locale").replace("_", "-") or None
        if locale is not None and not _LOCALE.match(locale):
            bad.append((number, "contacts.bad_locale", {"value": locale[:20]}))
            continue
        rows[digits] = ContactRow(digits, consent in _YES, locale and locale.lower())
    if bad:
        raise ContactsError(bad)
    return list(rows.values())


async def import_contacts(
    session: AsyncSession,
    consultation: Consultation,
    list_name: str,
    path: Path,
    secret: bytes,
    now: datetime,
) -> ImportSummary:
    """Add or update the list's contacts from the CSV file at `path`, in the caller's
    transaction. A contact who unsubscribed stays unsubscribed; one no longer opted in loses
    their opt-in (marketing templates stop reaching them)."""
    if not LIST_NAME.match(list_name):
        raise ContactsError([(0, "contacts.bad_list_name", {"name": list_name[:70]})])
    rows = read_contacts(path)
    hashes = {row.digits: identity_hash(secret, CHANNEL, row.digits) for row in rows}
    found = await session.exec(
        select(Contact).where(
            col(Contact.consultation_id) == consultation.id,
            col(Contact.list_name) == list_name,
            col(Contact.channel) == CHANNEL,
        )
    )
    known = {contact.identity_hash: contact for contact in found.all()}
    added = updated = 0
    for row in rows:
        digest = hashes[row.digits]
        contact = known.get(digest)
        if contact is None:
            assert consultation.id is not None
            contact = Contact(
                consultation_id=consultation.id,
                list_name=list_name,
                channel=CHANNEL,
                identity_hash=digest,
                created_at=now,
            )
            added += 1
        else:
            updated += 1
        contact.address = row.digits
        contact.locale = row.locale
        if not row.opted_in:
            contact.opted_in_at = None
        elif contact.opted_in_at is None:
            contact.opted_in_at = now
        session.add(contact)
    await session.flush()
    return ImportSummary(added, updated, sum(1 for row in rows if row.opted_in))
