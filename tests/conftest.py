"""Shared pytest fixtures: each area keeps its fixtures in a module of its own.

The suite runs TensorFlow with oneDNN off (its own CPU kernels), whatever the machine:
that is TensorFlow's default on most CPUs, and the stricter of the two (it rejects ops
oneDNN accepts). ``tests/test_portability.py`` also runs the model with oneDNN on and
compares. Set before any test module can import TensorFlow.
"""

import os

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["tests.fixtures_corpus", "tests.fixtures_model"]
