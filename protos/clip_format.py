"""The clip every stage exchanges: 16 kHz mono, one second.

The numbers live here, at the bottom of the import graph, because samples.pb records
the sample rate its clips were embedded at; code that handles audio imports them
through :mod:`corpus.clip`, which also holds the validator of the clip contract.
Standard library only.
"""

SAMPLE_RATE = 16000
"""Sample rate of a normalised clip, in Hz."""

CLIP_SECONDS = 1
"""Length of a normalised clip, in seconds (MSWC's clips are one second)."""

CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
"""Length of a normalised clip, in samples."""
