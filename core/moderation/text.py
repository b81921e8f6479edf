"""What a proposal says, reduced to what similarity compares: stemmed content words and the
character trigrams of its words.

Pure and offline: the Snowball stemmers (snowballstemmer) of the proposal's language, and a
short stop-word list per language written for proposals, so that the framing every proposal
shares ("We should", "Il faudrait", "more", "plus") does not make every pair look alike. A
language without a stemmer here keeps its words whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache, lru_cache

import snowballstemmer  # type: ignore[import-untyped]

_WORD = re.compile(r"[^\W_]+")
TERM_LENGTH = 64  # the index's column: a longer word (a pasted address) is cut

# locale's language -> Snowball algorithm
STEMMERS: dict[str, str] = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "lt": "lithuanian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}

# Grammar words, and the words every proposal frames itself with (the prefix, "should",
# "more"): they say nothing about which idea a proposal is. Compared after accents are dropped.
_STOP_WORDS: dict[str, str] = {
    "en": """
        a about after all also an and any are as at be been before being both but by can
        could do does each every for from get had has have having he her his how i if in
        into is it its let lets make made more most much must my need needs no not now of
        on once only or other our ours ought out over own please really should so some such
        than that the their them then there these they this those through to too up us very
        was we were what when where which while who why will with would you your ensure
        better many less new able per instead""",
    "fr": """
        a afin ai au aussi aux avec avoir beaucoup bien c ca ce ceci cela ces cet cette
        chaque comme d dans de des doit doivent donc du elle elles en encore entre est et
        etre faire faut faudrait fait font il ils j je l la le les leur leurs lui m ma mais
        me meme mes moi moins mon n ne nos notre nous on ont ou par pas peu plus pour pourrait
        pourraient devrait devraient devrions devons doit doivent
        pouvoir qu que quel quelle qui s sa sans se ses si son sont sur ta te tes toi ton
        tous tout toute toutes tres tu un une vos votre vous y davantage mettre permettre
        nouveau nouveaux nouvelle nouvelles meilleur meilleure mieux""",
}
STOP_WORDS: dict[str, frozenset[str]] = {
    language: frozenset(words.split()) for language, words in _STOP_WORDS.items()
}


def language_of(locale: str) -> str:
    """ "fr_CA", "fr-ca" and "fr" all speak "fr"."""
    return locale.replace("-", "_").split("_", 1)[0].lower()


def _plain(word: str) -> str:
    """Without accents (a participant typing on a phone often drops them)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def _stemmer(language: str) -> snowballstemmer.stemmer | None:
    algorithm = STEMMERS.get(language)
    return snowballstemmer.stemmer(algorithm) if algorithm else None


def content_words(text: str, locale: str) -> list[str]:
    """The words that carry meaning, lower-cased and without accents, in order.

    Elisions split ("l'école" is "école"), digits count as words, one-letter words and the
    language's stop words do not.
    """
    stop = STOP_WORDS.get(language_of(locale), frozenset())
    words = (_plain(word).casefold() for word in _WORD.findall(text.casefold()))
    return [word for word in words if len(word) > 1 and word not in stop]


# The Snowball stemmers are pure Python: a word is stemmed once per process (a consultation's
# vocabulary is a few tens of thousands of words).
@lru_cache(maxsize=200_000)
def _stem(word: str, language: str) -> str:
    stemmer = _stemmer(language)
    stem = _plain(stemmer.stemWord(word)) if stemmer is not None else word
    # Plural and feminine endings the stemmers keep ("velos", "buse" of "buses"): dropped
    # alike on both sides of every comparison, so "bus" and "buses" meet.
    while len(stem) > 3 and stem[-1] in "se":
        stem = stem[:-1]
    return stem[:TERM_LENGTH]


def stemmed_words(text: str, locale: str) -> list[tuple[str, str]]:
    """(word, stem) of each content word of `text`, by the stemmer of its language."""
    language = language_of(locale)
    return [(word, _stem(word, language)) for word in content_words(text, locale)]


def terms(text: str, locale: str) -> frozenset[str]:
    """The stemmed content words of `text` (the similarity index's keys)."""
    return frozenset(stem for _, stem in stemmed_words(text, locale))


def trigrams(text: str, locale: str) -> dict[str, Counter[str]]:
    """Per term, the character trigrams of its words, each padded with a space at both ends:
    close for words a stemmer misses ("construire" and "construit", a typo)."""
    grams: dict[str, Counter[str]] = {}
    for word, stem in stemmed_words(text, locale):
        padded = f" {word} "
        found = grams.setdefault(stem, Counter())
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams
