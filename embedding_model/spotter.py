"""Keyword spotting from a coreset: slide a 1-s window over audio, score it, pick peaks.

The last step after selection: the 25 or 60 clips in a ``train.npz`` become a
detector for their keywords in recordings of any length and in live streams::

    train = load_train_set("train.npz")
    backend = get_backend(train.backend)           # the pool's own embedding
    check_backend(train, backend)                  # refuse another model
    head = fit_head(train, kind="dataperf")        # DataPerf's classifier, as eval fits it
    spotter = Spotter(backend, head, train_label_names(train))
    for detection in spotter.detect(load_recording("meeting.opus"), "meeting.opus"):
        print(detection)

Pipeline: windows of 16000 samples every ``hop`` samples (default 1600 = 100 ms),
embedded in batches -> the head's class posteriors [W, K + 1] -> keyword scores [W, K]
(nontarget dropped) -> a causal moving average over ``smooth`` windows -> per keyword,
an event opens when the score reaches ``threshold`` and closes when it falls below it
(or after ``refractory`` seconds); the event's peak is the detection, and the keyword
is then muted for ``refractory`` seconds after the peak. Everything is causal, so a
stream (:meth:`Spotter.stream`) and a whole file (:meth:`Spotter.detect`) give the
same detections.

Heads (both fitted on exactly the train.npz rows):

- ``dataperf``: DataPerf's scoring classifier (``protos.dataperf``: soft vote of
  ``SVC(probability=True)`` and ``LogisticRegression``), one per DataPerf seed, fitted
  on the rows in file order as eval fits them, posteriors averaged over the seeds
  (eval scores each seed's classifier; the spotter uses them all at once).
- ``linear``: a small head, multinomial logistic regression with balanced class
  weights on length-normalised embeddings; one matrix and a softmax, so it exports
  to any runtime.

No TensorFlow here: the backend brings whatever it needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from corpus.audio import ClipError, decode_audio
from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE
from protos.dataperf import DATAPERF_SEEDS, fit_classifier
from protos.errors import EnvironmentProblem, InputError
from protos.train_file import TrainSet, load_train_file

WINDOW = CLIP_SAMPLES
"""Samples per analysis window: one second at 16 kHz (one clip)."""

HEAD_KINDS = ("dataperf", "linear")


# ---------------------------------------------------------------- the training set


def dataperf_seeds() -> tuple[int, ...]:
    """The seeds of DataPerf's scoring protocol."""
    return tuple(DATAPERF_SEEDS)


def load_train_set(path) -> TrainSet:
    """Read a train.npz (:func:`protos.train_file.load_train_file`; a bad file is an
    :class:`~protos.errors.InputError` with one line)."""
    return load_train_file(path)


def train_label_names(train) -> list[str]:
    """Class names of a TrainSet, index = class id (``"nontarget"`` first)."""
    if train.label_names is not None:
        return list(train.label_names)
    return ["nontarget"] + [str(c) for c in range(1, int(train.y.max()) + 1)]


def check_backend(train, backend, train_path: str = "train.npz") -> None:
    """Refuse a backend that did not make the training vectors.

    Raises:
        InputError: one line naming both sides when the backend name, model identity or
            dimension recorded in the train file differs from ``backend``'s.
    """
    dim = train.x.shape[1]
    if train.embedding_dim and train.embedding_dim != dim:
        raise InputError(f"{train_path}: records embedding_dim={train.embedding_dim} but train_x "
                         f"has {dim}-d vectors")
    if train.backend and train.backend != backend.name:
        raise InputError(f"embedding backends differ: {train_path} was embedded with "
                         f"{train.backend!r}, the spotter runs {backend.name!r}; use --backend "
                         f"{train.backend}")
    if train.model_id and train.model_id != backend.identity:
        raise InputError(f"embedding model ids differ: {train_path} has {train.model_id!r}, the "
                         f"{backend.name} backend loaded {backend.identity!r}; pass --model with "
                         "the model the pool was built with")
    if int(backend.dim) != dim:
        raise InputError(f"embedding dims differ: {train_path} has {dim}-d vectors, the "
                         f"{backend.name} backend makes {backend.dim}-d")


# ---------------------------------------------------------------------------- heads


class DataPerfHead:
    """DataPerf's classifier, one per seed, posteriors averaged over the seeds.

    Args:
        seeds: classifier seeds (default: DataPerf's ten).
    """

    kind = "dataperf"

    def __init__(self, seeds: Sequence[int] | None = None):
        self.seeds = tuple(dataperf_seeds() if seeds is None else seeds)
        if not self.seeds:
            raise ValueError("the dataperf head needs at least one seed")
        self.models: list = []
        self.n_classes = 0

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> "DataPerfHead":
        """x [M, D] float32, y [M] int class ids < n_classes; rows in the given order, as
        eval trains (SVC's probability calibration depends on row order)."""
        import warnings

        self.n_classes = int(n_classes)
        self.models = []
        for seed in self.seeds:
            with warnings.catch_warnings():
                # lbfgs stopping at DataPerf's max_iter is part of the protocol: keep it quiet.
                warnings.filterwarnings("ignore", message=".*failed to converge")
                self.models.append(fit_classifier(seed, np.asarray(x, np.float32),
                                                  np.asarray(y, np.int64)))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """x [N, D] float32 -> posteriors [N, n_classes] float32 (rows sum to 1)."""
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        for model in self.models:
            out[:, model.classes_] += model.predict_proba(x)
        return (out / len(self.models)).astype(np.float32)


class LinearHead:
    """A small head: softmax(W · x / |x| + b), trained with balanced class weights.

    Args:
        c: inverse L2 regularisation strength of the logistic regression.
        seed: its random state.
    """

    kind = "linear"

    def __init__(self, c: float = 10.0, seed: int = 0):
        self.c = float(c)
        self.seed = int(seed)
        self.weights = np.zeros((0, 0), np.float32)  # [D, n_classes]
        self.bias = np.zeros(0, np.float32)  # [n_classes]

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> "LinearHead":
        from sklearn.linear_model import LogisticRegression

        x = _unit_rows(np.asarray(x, np.float64))
        model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000,
                                   random_state=self.seed)
        model.fit(x, y)
        weights = np.zeros((x.shape[1], n_classes))
        # A class absent from the training rows gets a logit far below the others.
        bias = np.full(n_classes, -30.0)
        if len(model.classes_) == 2:  # binary: sklearn keeps one row for class 1
            weights[:, model.classes_[1]] = model.coef_[0]
            bias[model.classes_[0]] = 0.0
            bias[model.classes_[1]] = model.intercept_[0]
        else:
            weights[:, model.classes_] = model.coef_.T
            bias[model.classes_] = model.intercept_
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = _unit_rows(np.asarray(x, np.float32)) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def fit_head(train, kind: str = "dataperf", seeds: Sequence[int] | None = None):
    """Fit a head of ``kind`` (``"dataperf"`` or ``"linear"``) on a TrainSet's rows.

    Raises:
        InputError: an unknown kind, or a training set with fewer than two classes.
    """
    if kind not in HEAD_KINDS:
        raise InputError(f"unknown head {kind!r}; choose one of {', '.join(HEAD_KINDS)}")
    classes = np.unique(train.y)
    if len(classes) < 2:
        raise InputError("the training set has a single class; a spotter needs keywords and "
                         "nontarget clips")
    n_classes = len(train_label_names(train))
    if int(train.y.max()) >= n_classes:
        raise InputError(f"class id {int(train.y.max())} has no name in {train_label_names(train)}")
    head = DataPerfHead(seeds) if kind == "dataperf" else LinearHead()
    return head.fit(train.x, train.y, n_classes)


# ----------------------------------------------------------------------- recordings


def load_recording(path) -> np.ndarray:
    """Decode any audio file libsndfile reads, mixed to mono, resampled to 16 kHz.

    Returns:
        np.ndarray [shape=(n,)] float32 in [-1, 1] at 16 kHz (any length, silence allowed).

    Raises:
        InputError: the file is missing, empty or not decodable.
    """
    import soxr

    try:
        y, sr = decode_audio(path)
    except ClipError as exc:
        raise InputError(f"{exc}: not a recording the spotter can read (WAV, FLAC, Ogg/Opus, "
                         "Ogg/Vorbis, MP3)") from None
    if sr != SAMPLE_RATE:
        y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y, dtype=np.float32)


def window_count(n_samples: int, hop: int) -> int:
    """Windows covering ``n_samples``: one per hop, the tail zero-padded, at least one."""
    if n_samples <= WINDOW:
        return 1
    return 1 + math.ceil((n_samples - WINDOW) / hop)


# ------------------------------------------------------------------- peak picking


@dataclass(frozen=True)
class Detection:
    """One keyword found in one recording.

    Attributes:
        source: the recording (its path, or ``"-"`` for standard input).
        keyword: the keyword's label name.
        start, end: seconds from the recording's start (the 1-s window at the peak).
        score: the smoothed keyword posterior at the peak, in [0, 1].
    """

    source: str
    keyword: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


class PeakPicker:
    """Causal smoothing and peak picking over window scores, one window at a time.

    Args:
        keywords: the K keyword names (score columns).
        hop: samples between windows.
        smooth: windows in the moving average (1 = no smoothing).
        threshold: a smoothed score at or above this opens an event.
        refractory: seconds after a detection's peak during which the same keyword is
            not detected again; also the longest an event stays open. After a
            detection the keyword fires again only once its score has dropped below
            ``threshold``.
    """

    def __init__(self, keywords: Sequence[str], hop: int, smooth: int, threshold: float,
                 refractory: float, source: str = ""):
        self.keywords = list(keywords)
        self.hop = int(hop)
        self.smooth = max(1, int(smooth))
        self.threshold = float(threshold)
        self.refractory_windows = max(1, round(refractory * SAMPLE_RATE / self.hop))
        self.source = source
        k = len(self.keywords)
        self._history = np.zeros((self.smooth, k), np.float64)
        self._filled = 0
        self._index = 0  # index of the next window
        self._open = np.zeros(k, bool)
        self._opened_at = np.zeros(k, np.int64)
        self._peak_at = np.zeros(k, np.int64)
        self._peak = np.zeros(k, np.float64)
        self._muted_until = np.full(k, -1, np.int64)
        self._armed = np.ones(k, bool)

    def push(self, scores: np.ndarray) -> list[Detection]:
        """scores [W, K] float (raw window posteriors, in window order) -> detections closed."""
        found: list[Detection] = []
        for row in np.asarray(scores, np.float64).reshape(-1, len(self.keywords)):
            self._history[self._index % self.smooth] = row
            self._filled = min(self._filled + 1, self.smooth)
            smoothed = self._history.sum(axis=0) / self._filled
            i = self._index
            for k, value in enumerate(smoothed):
                if self._open[k]:
                    if value >= self.threshold and i - self._opened_at[k] < self.refractory_windows:
                        if value > self._peak[k]:
                            self._peak[k], self._peak_at[k] = value, i
                        continue
                    found.append(self._close(k))
                if value < self.threshold:
                    self._armed[k] = True
                elif not self._open[k] and self._armed[k] and i > self._muted_until[k]:
                    self._open[k] = True
                    self._opened_at[k] = self._peak_at[k] = i
                    self._peak[k] = value
            self._index += 1
        return found

    def flush(self) -> list[Detection]:
        """Close the events still open at the end of the audio."""
        return [self._close(k) for k in np.flatnonzero(self._open)]

    def _close(self, k: int) -> Detection:
        self._open[k] = False
        self._armed[k] = False
        peak_at = int(self._peak_at[k])
        self._muted_until[k] = peak_at + self.refractory_windows
        # The smoothed score at window i averages windows i - smooth + 1 .. i; place
        # the detection at the middle of those windows.
        centre = max(0.0, peak_at - (min(self.smooth, peak_at + 1) - 1) / 2)
        start = centre * self.hop / SAMPLE_RATE
        return Detection(self.source, self.keywords[k], round(start, 3),
                         round(start + WINDOW / SAMPLE_RATE, 3), round(float(self._peak[k]), 4))


# --------------------------------------------------------------------- the spotter


class Spotter:
    """Embedding backend + fitted head + peak picking.

    Args:
        backend: an embedding backend (``name``, ``dim``, ``identity``, ``embed``).
        head: a fitted head (``predict_proba(x [N, D]) -> [N, K + 1]``).
        label_names: class names, ``label_names[0]`` the nontarget class.
        hop: samples between windows (1600 = 100 ms).
        smooth, threshold, refractory: see :class:`PeakPicker`.
        batch_size: windows per embedding call on files.
    """

    def __init__(self, backend, head, label_names: Sequence[str], hop: int = 1600,
                 smooth: int = 3, threshold: float = 0.5, refractory: float = 1.0,
                 batch_size: int = 128):
        if hop < 1 or hop > WINDOW:
            raise InputError(f"hop must be 1..{WINDOW} samples, got {hop}")
        if not 0.0 < threshold <= 1.0:
            raise InputError(f"threshold must be in (0, 1], got {threshold}")
        if len(label_names) < 2:
            raise InputError("a spotter needs at least one keyword besides nontarget")
        self.backend = backend
        self.head = head
        self.label_names = list(label_names)
        self.keywords = self.label_names[1:]
        self.hop = int(hop)
        self.smooth = int(smooth)
        self.threshold = float(threshold)
        self.refractory = float(refractory)
        self.batch_size = max(1, int(batch_size))

    def picker(self, source: str) -> PeakPicker:
        return PeakPicker(self.keywords, self.hop, self.smooth, self.threshold, self.refractory, source)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """windows [N, 16000] float32 -> keyword scores [N, K] float32 (posteriors)."""
        if len(windows) == 0:
            return np.zeros((0, len(self.keywords)), np.float32)
        vectors = self.backend.embed(np.asarray(windows, np.float32))
        return self.head.predict_proba(vectors)[:, 1:]

    def window_scores(self, audio: np.ndarray, progress=None) -> np.ndarray:
        """audio [n] float32 16 kHz -> raw keyword scores [W, K], window i starting at i * hop."""
        chunks = [scores for _, scores in self._scored_batches(audio, progress)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.keywords)), np.float32)

    def detect(self, audio: np.ndarray, source: str, progress=None) -> list[Detection]:
        """Detections in a whole recording.

        Args:
            audio : np.ndarray [shape=(n,)] float32, 16 kHz mono.
            source: the name to put in each detection.
            progress: an optional callable ``progress(windows_done)`` after each batch.
        """
        picker = self.picker(source)
        found: list[Detection] = []
        for _, scores in self._scored_batches(audio, progress):
            found.extend(picker.push(scores))
        found.extend(picker.flush())
        return sorted(found, key=lambda d: (d.start, d.keyword))

    def _scored_batches(self, audio: np.ndarray, progress=None) -> Iterator[tuple[int, np.ndarray]]:
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1:
            raise InputError(f"expected mono audio of shape (n,), got {audio.shape}")
        n_windows = window_count(len(audio), self.hop)
        padded_length = (n_windows - 1) * self.hop + WINDOW
        if padded_length > len(audio):
            audio = np.concatenate([audio, np.zeros(padded_length - len(audio), np.float32)])
        frames = np.lib.stride_tricks.sliding_window_view(audio, WINDOW)[:: self.hop]
        for first in range(0, n_windows, self.batch_size):
            batch = np.ascontiguousarray(frames[first : first + self.batch_size])
            yield first, self.score_windows(batch)
            if progress is not None:
                progress(len(batch))

    def stream(self, chunks: Iterable[np.ndarray], source: str = "-") -> Iterator[Detection]:
        """Detections from a live stream, each yielded as soon as its event closes.

        Args:
            chunks: float32 16 kHz mono arrays of any sizes, in order (e.g. what a
                microphone delivers). The windows and detections equal those of
                :meth:`detect` on the concatenated audio.
        """
        picker = self.picker(source)
        buffer = np.zeros(0, np.float32)
        next_start = 0  # absolute sample index of the next window's start
        buffer_start = 0  # absolute sample index of buffer[0]
        total = 0
        windows_done = 0
        for chunk in chunks:
            chunk = np.asarray(chunk, np.float32).reshape(-1)
            total += len(chunk)
            buffer = np.concatenate([buffer, chunk])
            ready = []
            while next_start + WINDOW <= buffer_start + len(buffer):
                offset = next_start - buffer_start
                ready.append(buffer[offset : offset + WINDOW])
                next_start += self.hop
            if ready:
                for detection in picker.push(self.score_windows(np.stack(ready))):
                    yield detection
                windows_done += len(ready)
                drop = next_start - buffer_start
                buffer = buffer[drop:]
                buffer_start = next_start
        # The tail: the same zero-padded windows detect() would score.
        remaining = window_count(total, self.hop) - windows_done
        if remaining > 0:
            tail = np.concatenate([buffer, np.zeros(WINDOW + remaining * self.hop, np.float32)])
            windows = [tail[j * self.hop : j * self.hop + WINDOW] for j in range(remaining)]
            yield from picker.push(self.score_windows(np.stack(windows)))
        yield from picker.flush()


def pcm16_chunks(stream, chunk_samples: int = 1600, rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Raw little-endian 16-bit mono PCM from a binary stream -> float32 16 kHz chunks.

    Reads what is available (``read1``) so a live pipe is processed as it arrives;
    another ``rate`` is resampled to 16 kHz with soxr's streaming resampler.
    """
    resampler = None
    if rate != SAMPLE_RATE:
        import soxr

        resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    read = getattr(stream, "read1", stream.read)
    carry = b""
    while True:
        data = read(2 * chunk_samples)
        last = not data
        data = carry + data
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if resampler is not None:
            samples = resampler.resample_chunk(samples, last=last)
        if len(samples):
            yield samples
        if last:
            return


def make_backend(name: str, options: dict):
    """``embedding_model.get_backend`` with the project's error classes."""
    from embedding_model.backends import BackendUnavailable, get_backend

    try:
        return get_backend(name, **options)
    except BackendUnavailable as exc:
        raise EnvironmentProblem(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def smooth_scores(scores: np.ndarray, smooth: int) -> np.ndarray:
    """The causal moving average :class:`PeakPicker` applies: scores [W, K] -> [W, K] float64."""
    scores = np.asarray(scores, np.float64)
    smooth = max(1, int(smooth))
    csum = np.cumsum(np.concatenate([np.zeros((1, scores.shape[1])), scores]), axis=0)
    index = np.arange(1, len(scores) + 1)
    lower = np.maximum(index - smooth, 0)
    return (csum[index] - csum[lower]) / (index - lower)[:, None]


def peaks_at(smoothed: np.ndarray, threshold: float, refractory_windows: int) -> list[tuple[int, int, float]]:
    """:class:`PeakPicker`'s detections on a whole smoothed track, vectorised over windows.

    For sweeping thresholds offline (a DET curve) without replaying the stream.

    Args:
        smoothed : np.ndarray [shape=(W, K)] from :func:`smooth_scores`.
        threshold: as in :class:`PeakPicker`.
        refractory_windows: the refractory period in windows.

    Returns:
        ``[(window index of the peak, keyword column, smoothed score)]``, in keyword
        then time order: the same peaks :class:`PeakPicker` reports.
    """
    found = []
    above = np.asarray(smoothed) >= threshold
    for k in range(smoothed.shape[1]):
        edges = np.diff(np.concatenate([[0], above[:, k].astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        muted_until = -1
        for a, b in zip(starts, ends):
            first = max(int(a), muted_until + 1)
            if first >= b:
                continue
            last = min(int(b), first + refractory_windows)
            peak = first + int(np.argmax(smoothed[first:last, k]))
            found.append((peak, k, float(smoothed[peak, k])))
            muted_until = peak + refractory_windows
    return found
