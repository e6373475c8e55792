"""Vocabularies for the synthetic corpus: frequent words, filtered like MSWC's keywords, plus number words.

MSWC's keywords are whole words of at least three letters, without digits. The
synthesizer takes the most frequent such words of a language from ``wordfreq`` and
always adds the language's number words (cardinals and ordinals, from
``num2words``): the embedding model holds number words out of training and uses them
as its few-shot test vocabulary, so every corpus must contain them.
"""

from __future__ import annotations

from corpus.words import is_keyword_like, normalize_word, number_words


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
