"""What counts as a word of the corpus: its normal form, the MSWC keyword rule, number words.

One definition for every stage: the synthesizer picks its vocabulary with it, the
embedding model's training plan holds number words out with it, and the dataset
builder matches the user's ``--keyword`` against the corpus with it.

* :func:`normalize_word`: NFC, surrounding whitespace removed, lower case ("Año" typed
  with a combining tilde is the corpus word "año").
* :func:`is_keyword_like`: MSWC's keywords are alphabetic words of at least
  :data:`MIN_WORD_CHARS` letters (any script), without digits, apostrophes or spaces.
* :func:`number_words`: single-word cardinals and ordinals of a language, from
  ``num2words`` when it is installed and from a small built-in table when it is not.
"""

from __future__ import annotations

import functools
import unicodedata

MIN_WORD_CHARS = 3
"""Shortest MSWC keyword, in characters."""

# wordfreq/MSWC and num2words disagree on a few codes.
_NUM2WORDS_LANG = {"nb": "no"}

# Cardinals that are single words in most languages: 0-100 (German and Dutch write
# every one of these as one word), the round hundreds, and 1000.
_CARDINALS = tuple(range(0, 101)) + tuple(range(200, 1001, 100))
# Ordinals people say as keywords: positions and dates.
_ORDINALS = tuple(range(1, 32)) + (40, 50, 60, 70, 80, 90, 100)

# Common number words, including forms num2words does not produce (feminine "una",
# "primera"; German "ein", "erste"). The training plan always holds these out; they
# are the whole answer for a language when num2words is not installed.
COMMON_NUMBER_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(text.split())
    for lang, text in {
        "en": "zero one two three four five six seven eight nine ten eleven twelve twenty hundred thousand "
        "first second third fourth fifth sixth seventh eighth ninth tenth",
        "es": "cero uno una dos tres cuatro cinco seis siete ocho nueve diez once doce veinte cien mil "
        "primero primera segundo segunda tercero tercera cuarto quinto sexto",
        "de": "null eins ein eine zwei drei vier fünf sechs sieben acht neun zehn elf zwölf zwanzig hundert "
        "tausend erste ersten erster zweite zweiten dritte dritten",
        "fr": "zéro un une deux trois quatre cinq six sept huit neuf dix onze douze vingt cent mille "
        "premier première deuxième troisième second seconde",
        "it": "zero uno una due tre quattro cinque sei sette otto nove dieci undici dodici venti cento mille "
        "primo prima secondo seconda terzo terza",
        "pt": "zero um uma dois duas três quatro cinco seis sete oito nove dez onze doze vinte cem mil "
        "primeiro primeira segundo segunda terceiro",
        "nl": "nul een één twee drie vier vijf zes zeven acht negen tien elf twaalf twintig honderd duizend "
        "eerste tweede derde",
        "pl": "zero jeden jedna dwa dwie trzy cztery pięć sześć siedem osiem dziewięć dziesięć sto tysiąc "
        "pierwszy pierwsza drugi druga trzeci",
    }.items()
}


def normalize_word(word: str, keep_case: bool = False) -> str:
    """The corpus form of a word: NFC, surrounding whitespace removed, lower case.

    Args:
        word: a word as typed or as a tool wrote it.
        keep_case: leave the case alone (the NFC form and the stripping still apply).

    Returns:
        The normalised word; "año" typed in either Unicode form gives the same string.
    """
    word = unicodedata.normalize("NFC", word.strip())
    return word if keep_case else word.lower()


def is_keyword_like(word: str) -> bool:
    """True for a word MSWC could have as a keyword: alphabetic, >= 3 characters, lower-case.

    Letters of any script count; digits, apostrophes, hyphens and spaces do not.
    """
    return len(word) >= MIN_WORD_CHARS and word.isalpha() and word == word.lower()


def number_words(lang: str, with_common_forms: bool = False) -> set[str]:
    """Single-word cardinals and ordinals of ``lang``, in their corpus form.

    Args:
        lang: language code (``"es"``, ``"en"``, ...), as in the corpus layout.
        with_common_forms: also the forms of :data:`COMMON_NUMBER_WORDS` num2words
            does not produce ("una", "primera", "ein", ...).

    Returns:
        From ``num2words`` (0-100, the round hundreds, 1000; ordinals 1-31 and the
        tens), keeping only words that pass :func:`is_keyword_like`: multi-word forms
        ("twenty-one", "vingt et un") are left out. Without ``num2words`` installed,
        the built-in table of :data:`COMMON_NUMBER_WORDS`. Empty for a language
        neither knows.
    """
    generated = _generated_number_words(lang)
    if generated is None:
        return set(COMMON_NUMBER_WORDS.get(lang, ()))
    if with_common_forms:
        return set(generated) | set(COMMON_NUMBER_WORDS.get(lang, ()))
    return set(generated)


@functools.lru_cache(maxsize=None)
def _generated_number_words(lang: str) -> frozenset[str] | None:
    """num2words' number words of ``lang``; None when num2words is not installed."""
    try:
        from num2words import num2words
    except ImportError:
        return None
    code = _NUM2WORDS_LANG.get(lang, lang)
    words: set[str] = set()
    for to, numbers in (("cardinal", _CARDINALS), ("ordinal", _ORDINALS)):
        for n in numbers:
            try:
                text = num2words(n, lang=code, to=to)
            except (NotImplementedError, KeyError, AttributeError, OverflowError, TypeError):
                # num2words has no (or a partial) converter for this language.
                continue
            word = normalize_word(text)
            if is_keyword_like(word):
                words.add(word)
    return frozenset(words)
