"""Which language a proposal is written in, when it is clearly none of the consultation's.

Offline: py3langid's naive Bayes model ships in its package. Short texts are hard, so the
identifier only chooses among the consultation's languages and a set of common ones (an
English text is not mistaken for Nigerian Pidgin or Scots when those are not in play), and
answers only with a clear margin. `consult bench flags` measures it on labelled texts
(tests/data/language_texts.csv) and real comments (the shared Polis conversations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache
from typing import Any

from py3langid.langid import (  # type: ignore[import-untyped]  # no type hints shipped
    MODEL_FILE,
    LanguageIdentifier,
)

# Languages a participant is likely to write in besides the consultation's: Europe's largest,
# the languages of its largest communities from elsewhere, and the world's most written.
COMMON = frozenset(
    {"ar", "de", "el", "en", "es", "fa", "fr", "hi", "it", "ja", "ko"}
    | {"nl", "pl", "pt", "ro", "ru", "sv", "tr", "uk", "vi", "zh"}
)
# Below this many letters a text says too little to tell languages apart.
MIN_LETTERS = 8
# The identified language's share among the candidates (softmax of the model's scores, with
# the model's own length temperature) needed to flag.
CLEAR = 0.9


@cache
def _identifier() -> Any:
    # Raw scores: the softmax over the candidates is taken here, in float64, so that a
    # candidate far behind the model's overall best does not vanish in float32.
    return LanguageIdentifier.from_model_file(MODEL_FILE)


def load_model() -> None:
    """Load the model now (about 0.6 s, once per process) rather than at the first proposal,
    which would stall everything its worker serves meanwhile: servers call it as they start."""
    _identifier()


def language_of(locale: str) -> str:
    """A locale's language code ("fr-CA" -> "fr")."""
    return locale.replace("_", "-").split("-")[0].casefold()


def other_language(
    text: str, locales: Iterable[str], *, clear: float = CLEAR, min_letters: int = MIN_LETTERS
) -> str | None:
    """The language `text` is clearly written in, if it is none of `locales`; else None.

    None also when the text is too short to tell, or when one of `locales` is a language the
    model does not know (then nothing can be said against it). `clear` and `min_letters` are
    the thresholds (`consult bench flags` measures others).
    """
    if sum(ch.isalpha() for ch in text) < min_letters:
        return None
    identifier = _identifier()
    known = set(identifier.labels)
    wanted = {language_of(locale) for locale in locales}
    if not wanted or not wanted <= known:
        return None
    candidates = (wanted | COMMON) & known
    scores: dict[str, float] = {
        lang: score for lang, score in identifier.rank(text) if lang in candidates
    }
    temperature = math.sqrt(len(text.encode()))
    top = max(scores.values())
    weights = {lang: math.exp((score - top) / temperature) for lang, score in scores.items()}
    best = max(weights, key=weights.__getitem__)
    if best in wanted or weights[best] / sum(weights.values()) < clear:
        return None
    return best
