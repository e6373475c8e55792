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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_system(*packages): skip with the apt-get line when a system package "
        "(named as in dataset_builder.system_check) is missing",
    )


def pytest_runtest_setup(item):
    marks = list(item.iter_markers(name="needs_system"))
    if marks:
        from tests.fixtures_corpus import skip_without

        skip_without(*[pkg for mark in marks for pkg in mark.args])


def as_from_a_shell() -> None:
    """``preexec_fn`` for a child that a Ctrl-C test interrupts: SIGINT at its default and
    unblocked, as a shell starts a command, whatever state the test process is in."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _sigint_is_left_as_found(request):
    """Every test leaves Ctrl-C handling in this process as it found it.

    Later tests start children that must see a Ctrl-C; a test that leaves SIGINT
    ignored or blocked here (so in every child started after it) fails, by name. The
    state is compared with the one the test found, not with Python's default: a shell
    starts a background job with SIGINT ignored, and the Ctrl-C tests' children reset
    it themselves (:func:`as_from_a_shell`).
    """
    import signal

    def state():
        return signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())

    before = state()
    yield
    after = state()
    if after != before:
        signal.signal(signal.SIGINT, before[0])
        signal.pthread_sigmask(signal.SIG_BLOCK if before[1] else signal.SIG_UNBLOCK, {signal.SIGINT})
        pytest.fail(f"changed SIGINT handling in the test process from {before} to {after}")
