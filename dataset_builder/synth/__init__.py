"""A synthetic Multilingual Spoken Words Corpus: text-to-speech in the MSWC layout.

``synthesize-corpus`` (:mod:`dataset_builder.synth.cli`) is the command;
:func:`dataset_builder.synth.build.synthesize_corpus` the function behind it;
:func:`corpus.words.number_words` the held-out test vocabulary of the embedding
model.
"""
