"""Issue 23's table on real file systems: a 1.5 MB tmpfs that a checkpoint does not fit, and a
read-only one (`mount -o remount,ro`). Mounting needs root (CAP_SYS_ADMIN); where it is not
permitted the read-only cases fall back to a folder without write permission (`chmod 555`, which
only binds a non-root user) and the full-disk cases are skipped, saying why. The same faults,
one write at a time: tests/test_disk_faults.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from charrec.checkpoint import load_checkpoint
from charrec.sweep.runner import RunFolder, finished_rows
from tests.faults import leftovers
from tests.helpers import TINY_TRAIN, invoke

SMALL = TINY_TRAIN
# a checkpoint of this network (weights, last weights, Adam's two moments: ~9 MB) does not fit
BIG = ("--epochs", "1", "--hidden", "2048", "--norm-size", "16,16", "--batch-size", "16")
SWEEP = """\
name: full
base:
  data_dir: {data}
  norm-size: 16,16
  hidden: 2048
  epochs: 1
  batch_size: 16
repeats: 2
"""


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Path]:
    """A fresh 1.5 MB tmpfs (skips where mounting is not permitted)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def read_only(tmp_path) -> Iterator[Callable]:
    """`make(folder)`: turn a folder (already filled) read-only: a tmpfs remounted `ro`, or,
    where mounting is not permitted, `chmod 555` (which binds only a non-root user)."""
    mounted: list[Path] = []

    def make(source: Path) -> Path:
        target = tmp_path / f"ro-{len(mounted)}"
        target.mkdir()
        if _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)).returncode == 0:
            mounted.append(target)
            subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)
            assert _mount("-o", "remount,ro", str(target)).returncode == 0
            return target
        if os.geteuid() == 0:
            pytest.skip("cannot mount here, and chmod does not bind root")
        subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)
        target.chmod(0o555)
        return target

    yield make
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture(scope="module")
def small_model(tiny, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("small") / "m.pth"
    assert invoke("train", "--data-dir", tiny, *SMALL, "--out", out).exit_code == 0
    return out.read_bytes()


def only_line(result, start: str) -> str:
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("Model: ")]
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith(start), result.stderr
    return lines[0]


def test_train_whose_checkpoint_does_not_fit_keeps_the_previous_one(tmpfs, tiny, small_model):
    out = tmpfs / "m.pth"
    out.write_bytes(small_model)
    result = invoke("train", "--data-dir", tiny, *BIG, "--out", out)
    assert result.exit_code == 1
    line = only_line(result, "Error:")
    assert "could not write the checkpoint" in line and "no space left on device" in line
    assert "the previous file is unchanged" in line
    assert out.read_bytes() == small_model and leftovers(tmpfs) == []


def test_train_into_a_read_only_folder_fails_before_training(read_only, tiny, small_model,
                                                              tmp_path):
    filled = tmp_path / "filled"
    filled.mkdir()
    (filled / "m.pth").write_bytes(small_model)
    folder = read_only(filled)
    result = invoke("train", "--data-dir", tiny, *SMALL, "--out", folder / "m.pth")
    assert result.exit_code == 1
    line = only_line(result, "Error:")
    assert f"cannot write the checkpoint {folder / 'm.pth'}" in line
    assert "nothing was trained; choose a writable --out" in line
    assert "epoch" not in result.stdout and "Data:" not in result.stdout  # before any work
    assert (folder / "m.pth").read_bytes() == small_model


def test_train_in_a_read_only_folder_fails_before_any_work(read_only, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(read_only(empty))
    result = invoke("train", "--epochs", "1")  # the default data folder must be rendered here
    assert result.exit_code == 1
    line = only_line(result, "Error:")
    assert "cannot write" in line and "nothing was" in line
    assert "rendering" not in result.output and "generating" not in result.output


def test_rendering_into_a_read_only_folder_fails_before_any_work(read_only, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = read_only(empty)
    result = invoke("train", "--data-dir", folder / "letters", "--out", tmp_path / "m.pth")
    assert result.exit_code == 1
    line = only_line(result, "Error:")
    assert f"cannot write the built-in letters to {folder / 'letters'}" in line
    assert "give --data-dir a dataset or a writable folder" in line


def test_test_in_a_read_only_folder_prints_the_accuracy_and_one_warning(read_only, tiny,
                                                                        tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(read_only(empty))
    result = invoke("test", "--model", "bundled", "--data-dir", tiny)
    assert result.exit_code == 0, result.output
    line = only_line(result, "Warning:")
    assert "could not write the confusion matrix" in line
    assert "Accuracy on" in result.stdout and "Most confused" in result.stdout


def test_a_sweep_on_a_full_disk_records_the_failed_trials_and_names_resume(tmpfs, tiny,
                                                                         tmp_path):
    spec = tmp_path / "full.yaml"
    spec.write_text(SWEEP.format(data=tiny))
    run_dir = tmpfs / "run"
    # two worker processes: the mount fails their writes as it fails this process's
    result = invoke("sweep", spec, "--out-dir", run_dir, "--jobs", "2", "--threads", "1")
    assert result.exit_code == 1, result.output
    line = only_line(result, "Error:")
    assert "no space left on device" in line
    assert line.endswith(f"Continue with: charrec sweep --resume {run_dir}")
    rows = RunFolder(run_dir).read_results()
    assert all((row["status"], row.get("rerun")) == ("failed", True) for row in rows)
    # The two workers race for the last free blocks: either both checkpoints fail (each trial
    # a failed row and a line), or one's temp file fills the disk while the other's row is
    # appended, and recording that row fails first. Both end in the one line above.
    if "2 trial(s) could not be saved" in line:
        assert result.stdout.count("failed: could not write the checkpoint") == 2
        assert len(rows) == 2
    else:
        assert "could not record trial" in line and "results.jsonl" in line
    assert leftovers(tmpfs) == []
    # more room, and --resume trains the two trials again
    assert _mount("-o", "remount,size=64m", str(tmpfs)).returncode == 0
    resumed = invoke("sweep", "--resume", run_dir, "--jobs", "1", "--threads", "1")
    assert resumed.exit_code == 0, resumed.output
    assert [row["status"] for row in finished_rows(RunFolder(run_dir).read_results())] == \
        ["ok", "ok"]
    load_checkpoint(run_dir / "checkpoints" / "t000.pth")


def test_a_sweep_into_a_read_only_folder_fails_before_any_work(read_only, tiny, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = read_only(empty)
    spec = tmp_path / "full.yaml"
    spec.write_text(SWEEP.format(data=tiny))
    result = invoke("sweep", spec, "--out-dir", folder / "run")
    assert result.exit_code == 1
    line = only_line(result, "Error:")
    assert f"cannot write the sweep's run folder {folder / 'run'}" in line
    assert "Sweep" not in result.stdout
