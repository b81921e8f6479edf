"""The ids organisers and chat members send us (a path, a form, a button's data), bounded to
what the database holds.

Every table's id is an `INTEGER`: 32 bits on PostgreSQL, which refuses a bigger parameter
with an error rather than finding no row. So an id from outside is checked against `ID_MAX`
before it reaches a query, and a bigger one is answered as a bad value, never a 500.
"""

from __future__ import annotations

ID_MAX = 2**31 - 1  # PostgreSQL's INTEGER; SQLite holds more, we never need it
ID_DIGITS = len(str(ID_MAX))  # 10


def parse_id(text: str) -> int | None:
    """The id `text` names (ASCII digits only, 1..ID_MAX), else None.

    `str.isdigit` is not enough: "²" is a digit `int` refuses, and "١٢" (Arabic-Indic) one
    `int` reads; an organiser typing either meant no id of ours."""
    if not text or len(text) > ID_DIGITS or not (text.isascii() and text.isdecimal()):
        return None
    number = int(text)
    return number if 1 <= number <= ID_MAX else None
