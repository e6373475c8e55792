"""Synthetic speakers: a fixed voice and a fixed recording channel, with an id, a gender and a split.

A speaker is what MSWC's speakers are to the model: a voice that says many words,
always sounding the same way, heard through the same microphone in the same room.
Here that is an engine voice (plus espeak-ng variant), a speaking rate, a pitch, a
vocal-tract (formant) shift, a loudness, and a channel: room, background noise type
and level, band-limit and codec bitrate. Splits are assigned per speaker, so
TRAIN/DEV/TEST never share a voice configuration.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields

import numpy as np

from dataset_builder.synth.engines import ESPEAK, Voice

NOISE_TYPES = ("white", "pink", "brown", "babble", "hum")
BANDS = ("full", "microphone", "telephone")
# Low bitrates are part of the channel: real clips went through lossy codecs.
OPUS_BITRATES = (12000, 16000, 24000, 32000, 48000)
DEFAULT_OPUS_BITRATE = 32000
SPLIT_FRACTIONS = {"TRAIN": 0.8, "DEV": 0.1, "TEST": 0.1}


def stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts`` that is the same on every machine and run (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded from ``parts`` alone, so results do not depend on processing order."""
    return np.random.default_rng(stable_int(*parts))


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker (a row of ``{lang}_speakers.csv``, see :mod:`corpus.speakers`).

    Voice: ``engine``, ``voice``, ``variant``, ``rate`` (espeak-ng words per minute,
    0 for other engines), ``duration_stretch`` (festival/flite; 1.0 for espeak-ng),
    ``pitch`` (espeak-ng 0-99, -1 for others), ``formant_shift`` (spectral scale
    factor, 1.0 = unchanged), ``loudness_db`` (speech RMS in dBFS).
    Channel: ``room_rt60`` (s, 0 = no room), ``room_seed``, ``noise`` (one of
    :data:`NOISE_TYPES` or ``"none"``), ``snr_db`` (mean SNR), ``band`` (one of
    :data:`BANDS`), ``opus_bitrate`` (bit/s of the clip's Opus encoding).
    """

    speaker: str
    lang: str
    gender: str
    split: str
    engine: str
    voice: str
    variant: str
    family: str
    encoding: str
    rate: int
    duration_stretch: float
    pitch: int
    formant_shift: float
    loudness_db: float
    room_rt60: float
    room_seed: int
    noise: str
    snr_db: float
    band: str
    opus_bitrate: int

    @property
    def voice_spec(self) -> Voice:
        return Voice(self.engine, self.voice, self.variant, self.gender, self.encoding)

    def can_say(self, word: str) -> bool:
        return self.voice_spec.can_say(word)


SPEAKER_COLUMNS = tuple(f.name for f in fields(Speaker))
"""The columns of ``{lang}_speakers.csv`` as the synthesizer writes it: every :class:`Speaker` field."""


def _apportion(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` into integer shares proportional to ``weights`` (largest remainder), each >= 1 when n allows."""
    k = len(weights)
    if n >= k:
        base = [1] * k
        rest = n - k
    else:
        base = [0] * k
        rest = n
    total = sum(weights)
    quotas = [rest * w / total for w in weights]
    shares = [math.floor(q) for q in quotas]
    order = sorted(range(k), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in order[: rest - sum(shares)]:
        shares[i] += 1
    return [b + s for b, s in zip(base, shares)]


def make_speakers(
    lang: str,
    voices: list[Voice],
    n_speakers: int,
    seed: int,
    augment: bool = True,
    opus_bitrate: int | None = None,
) -> list[Speaker]:
    """Draw ``n_speakers`` speakers for ``lang`` from ``voices``, seeded.

    Voice families (engine + voice) share the speakers in proportion to the square
    root of their number of variants, at least one each: espeak-ng's hundred variants
    per voice get most speakers, yet every festival and flite voice is heard.
    Within a family, variants are used in a seeded order before any repeats.

    Args:
        lang: language code.
        voices: :func:`dataset_builder.synth.engines.voices_for` of ``lang``.
        n_speakers: how many speakers.
        seed: the corpus seed.
        augment: draw a recording channel (room, noise, band-limit, codec); else a clean one.
        opus_bitrate: one Opus bitrate (bit/s) for every speaker; None draws one per
            speaker (12-48 kbit/s) with augmentation, 32 kbit/s without.

    Returns:
        Speakers in a seeded order, with splits TRAIN/DEV/TEST of about 80/10/10
        (at least one DEV and one TEST speaker when there are three or more).
    """
    if not voices:
        raise ValueError(f"no voices for {lang!r}")
    families: dict[str, list[Voice]] = {}
    for v in voices:
        families.setdefault(v.family, []).append(v)
    names = sorted(families)
    shares = _apportion(n_speakers, [math.sqrt(len(families[f])) for f in names])
    picks: list[Voice] = []
    for fam, share in zip(names, shares):
        members = families[fam]
        order = rng_for(seed, lang, "variants", fam).permutation(len(members))
        picks += [members[order[i % len(members)]] for i in range(share)]
    picks = [picks[i] for i in rng_for(seed, lang, "speaker-order").permutation(len(picks))]

    n_dev = n_test = max(1, round(n_speakers * SPLIT_FRACTIONS["DEV"])) if n_speakers >= 3 else 0
    splits = ["TEST"] * n_test + ["DEV"] * n_dev + ["TRAIN"] * (n_speakers - n_dev - n_test)

    speakers = []
    for index, (voice, split) in enumerate(zip(picks, splits)):
        r = rng_for(seed, lang, "speaker", index)
        speaker_id = hashlib.sha256(f"{lang}\x1f{seed}\x1f{index}".encode()).hexdigest()[:40]
        is_espeak = voice.engine == ESPEAK
        rate = int(r.integers(130, 211)) if is_espeak else 0
        stretch = 1.0 if is_espeak else round(float(r.uniform(0.85, 1.2)), 3)
        pitch = int(r.integers(25, 76)) if is_espeak else -1
        formant = round(float(r.uniform(0.9, 1.12)), 3)
        loudness = round(float(r.uniform(-32.0, -16.0)), 1)
        # The channel is drawn even without augmentation, so switching it on or off
        # leaves every voice parameter as it was.
        rt60 = round(float(r.uniform(0.15, 0.7)), 3) if r.random() < 0.75 else 0.0
        room_seed = int(r.integers(0, 2**31))
        noise = str(r.choice(NOISE_TYPES))
        snr = round(float(r.uniform(5.0, 30.0)), 1)
        band = str(r.choice(BANDS, p=[0.4, 0.4, 0.2]))
        bitrate = int(r.choice(OPUS_BITRATES))
        if not augment:
            rt60, noise, snr, band = 0.0, "none", 0.0, "full"
        if opus_bitrate is not None:
            bitrate = int(opus_bitrate)
        elif not augment:
            bitrate = DEFAULT_OPUS_BITRATE
        speakers.append(
            Speaker(
                speaker=speaker_id,
                lang=lang,
                gender=voice.gender,
                split=split,
                engine=voice.engine,
                voice=voice.name,
                variant=voice.variant,
                family=voice.family,
                encoding=voice.encoding,
                rate=rate,
                duration_stretch=stretch,
                pitch=pitch,
                formant_shift=formant,
                loudness_db=loudness,
                room_rt60=rt60,
                room_seed=room_seed,
                noise=noise,
                snr_db=snr,
                band=band,
                opus_bitrate=bitrate,
            )
        )
    return speakers

