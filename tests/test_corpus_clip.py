"""corpus.clip: the one validator of the clip contract (shape, dtype, finite values)."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.clip import CLIP_SAMPLES, SAMPLE_RATE, ClipContractError, check_clips
from protos.errors import InputError


def test_contract_constants():
    assert (SAMPLE_RATE, CLIP_SAMPLES) == (16000, 16000)


def test_valid_float32_batch_passes_through_unchanged():
    clips = np.zeros((3, CLIP_SAMPLES), np.float32)
    assert check_clips(clips) is clips


def test_other_float_types_are_converted():
    out = check_clips(np.full((2, CLIP_SAMPLES), 0.25, np.float64))
    assert out.dtype == np.float32 and np.all(out == 0.25)


@pytest.mark.parametrize(
    "clips, complaint",
    [
        (np.zeros((2, 8000), np.float32), r"shape \[N, 16000\] \(1 s at 16 kHz\), got \(2, 8000\)"),
        (np.zeros(CLIP_SAMPLES, np.float32), r"got \(16000,\)"),
        (np.zeros((2, CLIP_SAMPLES), np.int16), "got dtype int16"),
    ],
)
def test_wrong_shape_or_dtype_is_refused(clips, complaint):
    with pytest.raises(ClipContractError, match=complaint):
        check_clips(clips, "my backend")


def test_non_finite_samples_are_refused_naming_the_clip():
    clips = np.zeros((4, CLIP_SAMPLES), np.float32)
    clips[2, 100] = np.inf
    with pytest.raises(ClipContractError, match=r"^my backend: .*NaN or infinite.*clip 2\)") as err:
        check_clips(clips, "my backend")
    # Bad input (exit status 1), and still a ValueError for callers that catch that.
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)


def _sample_rate_literals(tree) -> list[int]:
    """Lines that bind 16000 to a name, or pass it as a sample rate (keyword or default)."""
    import ast

    rate_names = {"sr", "rate", "sample_rate", "fs", "sampling_rate"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and getattr(node.value, "value", None) == 16000:
            lines.append(node.lineno)
        elif isinstance(node, ast.keyword) and node.arg in rate_names and getattr(node.value, "value", None) == 16000:
            lines.append(node.value.lineno)
        elif isinstance(node, ast.arguments):
            params = [*node.posonlyargs, *node.args][-len(node.defaults):] if node.defaults else []
            for param, default in [*zip(params, node.defaults), *zip(node.kwonlyargs, node.kw_defaults)]:
                if param.arg in rate_names and getattr(default, "value", None) == 16000:
                    lines.append(default.lineno)
    return lines


def test_the_sample_rate_is_declared_once_and_imported_everywhere_else():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = []
    for package in ("protos", "corpus", "embedding_model", "dataset_builder", "selection", "eval"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            found += [f"{rel}:{line}" for line in _sample_rate_literals(ast.parse(path.read_text(encoding="utf-8")))]
    assert found == ["protos/clip_format.py:9"], "import SAMPLE_RATE / CLIP_SAMPLES from corpus.clip instead"


def test_the_sample_rate_check_sees_each_way_of_redeclaring_it():
    import ast

    source = ("RATE = 16000\nx: int = 16000\nf(sr=16000)\ndef g(a, sample_rate=16000, *, fs=16000):\n    pass\n"
              "BITRATES = (12000, 16000)\n")
    assert sorted(_sample_rate_literals(ast.parse(source))) == [1, 2, 3, 4, 4]
