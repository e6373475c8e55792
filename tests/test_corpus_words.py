"""corpus.words: one normal form for words, the MSWC keyword rule, number words with a working fallback."""

from __future__ import annotations

import subprocess
import sys

from corpus.words import COMMON_NUMBER_WORDS, is_keyword_like, normalize_word, number_words


def test_normal_form_is_nfc_stripped_lower_case():
    decomposed = "An\u0303o"  # "Año" with a combining tilde
    assert normalize_word(decomposed) == "año" == normalize_word(" AÑO\n")
    assert normalize_word(decomposed, keep_case=True) == "Año"
    assert len(normalize_word(decomposed)) == 3


def test_keyword_rule():
    assert is_keyword_like("año") and is_keyword_like("что")
    for bad in ("de", "k2o", "it's", "Madrid", "two words"):
        assert not is_keyword_like(bad)


def test_common_forms_extend_the_generated_number_words():
    es = number_words("es")
    assert {"uno", "veinte", "primero"} <= es and "una" not in es  # num2words' masculine forms
    assert number_words("es", with_common_forms=True) == es | COMMON_NUMBER_WORDS["es"]
    assert number_words("xx") == set() == number_words("xx", with_common_forms=True)


def test_number_words_fall_back_to_the_table_without_num2words():
    # A fresh interpreter in which `import num2words` fails, as on an install without it.
    code = (
        "import sys; sys.modules['num2words'] = None\n"
        "from corpus.words import number_words\n"
        "print(' '.join(sorted(number_words('es'))))\n"
        "print(' '.join(sorted(number_words('es', with_common_forms=True))))\n"
        "print(len(number_words('xx')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    table = " ".join(sorted(COMMON_NUMBER_WORDS["es"]))
    assert out[0] == table and out[1] == table and out[2] == "0"
