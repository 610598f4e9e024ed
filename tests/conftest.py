"""Fixtures shared by every test: small drawn letter datasets (see `tests.helpers`), one torch
thread, as `charrec train` uses by default (the networks in the tests are small, and on a 2-core
machine a second thread mostly spin-waits: tests ran several times slower with it), and
Hypothesis derandomised (the same examples on every run, no example database), so a run of the
suite is repeatable."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from tests.helpers import make_course_dataset, make_folder_dataset

torch.set_num_threads(1)

# A shell that starts the suite in the background (`pytest &`, nohup, some CI runners) hands it
# SIGINT ignored, and Python then installs no Ctrl-C handler. The interrupt tests need Python's
# usual one (KeyboardInterrupt), as a terminal user has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# charrec's per-user cache (the font checks, `data.builtin.font_cache`) goes to a folder of this
# run, inherited by the commands the tests start: the suite neither reads nor writes the user's.
os.environ["CHARREC_CACHE_DIR"] = tempfile.mkdtemp(prefix="charrec-test-cache-")

settings.register_profile("charrec", derandomize=True, database=None, deadline=None)
settings.load_profile("charrec")


@pytest.fixture(scope="session")
def course_dataset(tmp_path_factory) -> Path:
    return make_course_dataset(tmp_path_factory.mktemp("course") / "letters")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """Five images per letter in the course layout: for the many short runs of the disk tests."""
    return make_course_dataset(tmp_path_factory.mktemp("tiny") / "letters", per_class=5)


@pytest.fixture(scope="session")
def tiny_checkpoint(course_dataset: Path, tmp_path_factory) -> Path:
    """A small MLP trained for 2 epochs on `course_dataset` (seed 5): the model the predict and
    ONNX tests read with; modules copy it before use."""
    from tests.helpers import invoke

    out = tmp_path_factory.mktemp("tiny-model") / "tiny.pth"
    result = invoke("train", "--data-dir", course_dataset, "--epochs", "2", "--hidden", "32",
                    "--batch-size", "16", "--seed", "5", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def folder_dataset(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("folders") / "letters")


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Tests that run the CLI's `run_app` in this process leave its shutdown handlers (SIGTERM
    and SIGHUP ignored) behind; every test starts from the handlers the suite started with."""
    signals = [signal.SIGINT, *(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                                if hasattr(signal, name))]
    saved = {signum: signal.getsignal(signum) for signum in signals}
    yield
    for signum, handler in saved.items():
        if handler is not None:
            signal.signal(signum, handler)
