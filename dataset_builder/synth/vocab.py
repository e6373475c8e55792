"""Vocabularies for the synthetic corpus: frequent words, filtered like MSWC's keywords, plus number words.

MSWC's keywords are whole words of at least three letters, without digits. The
synthesizer takes the most frequent such words of a language from ``wordfreq`` and
always adds the language's number words (cardinals and ordinals, from
``num2words``): the embedding model holds number words out of training and uses them
as its few-shot test vocabulary, so every corpus must contain them.
"""

from __future__ import annotations

import functools
import unicodedata

MIN_WORD_CHARS = 3

# wordfreq and num2words disagree on a few codes.
_NUM2WORDS_LANG = {"nb": "no"}

# Cardinals that are single words in most languages: 0-100 (German and Dutch write
# every one of these as one word), the round hundreds, and 1000.
_CARDINALS = tuple(range(0, 101)) + tuple(range(200, 1001, 100))
# Ordinals people say as keywords: positions and dates.
_ORDINALS = tuple(range(1, 32)) + (40, 50, 60, 70, 80, 90, 100)


def normalize_word(word: str) -> str:
    """NFC-normalised lower-case form, so "año" typed in either Unicode form is one word."""
    return unicodedata.normalize("NFC", word).lower()


def is_keyword_like(word: str) -> bool:
    """True for a word MSWC could have as a keyword: alphabetic, >= 3 characters, lower-case.

    Letters of any script count; digits, apostrophes, hyphens and spaces do not.
    """
    return len(word) >= MIN_WORD_CHARS and word.isalpha() and word == word.lower()


@functools.lru_cache(maxsize=None)
def _number_words(lang: str) -> frozenset[str]:
    try:
        from num2words import num2words
    except ImportError as e:  # pragma: no cover - num2words is part of the synth install
        raise ImportError("number words need num2words: pip install num2words") from e
    code = _NUM2WORDS_LANG.get(lang, lang)
    words: set[str] = set()
    for to, numbers in (("cardinal", _CARDINALS), ("ordinal", _ORDINALS)):
        for n in numbers:
            try:
                text = num2words(n, lang=code, to=to)
            except (NotImplementedError, KeyError, AttributeError, OverflowError, TypeError):
                # num2words has no (or a partial) converter for this language.
                continue
            word = normalize_word(text.strip())
            if is_keyword_like(word):
                words.add(word)
    return frozenset(words)


def number_words(lang: str) -> set[str]:
    """Single-word cardinals and ordinals of ``lang`` that pass :func:`is_keyword_like`.

    Args:
        lang: language code (``"es"``, ``"en"``, ...), as in the corpus layout.

    Returns:
        The number words, NFC lower-case (e.g. ``{"uno", "dos", ..., "primero", ...}``
        for Spanish). Multi-word forms ("twenty-one", "vingt et un") are left out.
        Empty for a language ``num2words`` does not cover.
    """
    return set(_number_words(lang))


def frequent_words(lang: str, n: int) -> list[str]:
    """The ``n`` most frequent keyword-like words of ``lang`` according to ``wordfreq``.

    Args:
        lang: a language ``wordfreq`` knows.
        n: how many words.

    Returns:
        Up to ``n`` distinct words, most frequent first.

    Raises:
        ValueError: if ``wordfreq`` has no list for ``lang``.
    """
    import wordfreq

    if lang not in wordfreq.available_languages():
        raise ValueError(f"wordfreq has no word list for language {lang!r}")
    seen: set[str] = set()
    out: list[str] = []
    # Most of the top of a list is short function words that the filter drops;
    # widen the window until enough survive.
    window = max(4 * n, 1000)
    while True:
        candidates = wordfreq.top_n_list(lang, window, wordlist="best")
        for w in candidates:
            w = normalize_word(w)
            if w in seen or not is_keyword_like(w):
                continue
            seen.add(w)
            out.append(w)
            if len(out) == n:
                return out
        if len(candidates) < window:
            return out
        window *= 4
        seen.clear()
        out.clear()


def vocabulary(lang: str, n_frequent: int, include_numbers: bool = True) -> tuple[list[str], set[str]]:
    """The synthesis vocabulary of ``lang``: ``n_frequent`` frequent words plus the number words.

    Returns:
        words: frequent words first (most frequent first), then the number words
            not already among them, sorted.
        numbers: the subset of ``words`` that are number words.
    """
    words = frequent_words(lang, n_frequent)
    numbers = number_words(lang) if include_numbers else set()
    present = set(words)
    words += sorted(numbers - present)
    return words, {w for w in words if w in numbers} if include_numbers else set()
