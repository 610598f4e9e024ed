"""Issue 23: every write charrec makes, failed on purpose one at a time, the way SQLite tests
its I/O (`tests/faults.py`): a short `train`, `test` with its plot, a 2-trial `sweep`,
`predict --sheet`, `export`, rendering the built-in letters, importing a dataset and the font
cache. The
errno goes round ENOSPC, EROFS, EACCES, EDQUOT and EIO. After each run: no traceback; exit 1 and
one `Error:` line naming the cause when a result could not be written, exit 0 and one
`Warning:` line when only an extra (a plot, a sheet, the font cache) could not; the previous
checkpoint byte for byte; no temp file; a sweep folder that `--resume` finishes.
(Real full and read-only file systems: tests/test_disk_full.py.)"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charrec.checkpoint import load_checkpoint
from charrec.files import previous_path
from charrec.sweep.runner import RunFolder, finished_rows
from tests.faults import DISK_ERRNOS, DiskFaults, leftovers
from tests.helpers import TINY_TRAIN, invoke, make_folder_dataset

TRAIN = TINY_TRAIN
SWEEP = """\
name: faults
base:
  data_dir: {data}
  norm-size: 16,16
  hidden: 8
  epochs: 1
  batch_size: 16
  optim: sgd
  lr: 0.05
  momentum: 0.9
repeats: 2
"""  # two trials of one point: one plot, the fewest operations for a sweep
# in this process (worker processes are not patched), one torch thread (a second spin-waits)
ONE_THREAD = ("--jobs", "1", "--threads", "1")
# functions whose files are extras: failing to write them is a warning, never an error
EXTRA_SITES = ("chart.", "report.", "sweep.report.", "data.contact_sheet.",
               "data.builtin.font_cache.")


@pytest.fixture(scope="module", autouse=True)
def command_built_once():
    """The click command made from the Typer app once, not again for each of the hundreds of
    runs here (a tenth of a second each)."""
    import typer.testing

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
        yield


@pytest.fixture(scope="module")
def previous(tiny, tmp_path_factory) -> bytes:
    """The bytes of a checkpoint already at --out before each faulty run."""
    out = tmp_path_factory.mktemp("previous") / "m.pth"
    assert invoke("train", "--data-dir", tiny, *TRAIN, "--out", out).exit_code == 0
    return out.read_bytes()


@pytest.fixture
def quick_plots(monkeypatch):
    """matplotlib figures saved as a tiny PNG: the writes are what is tested here, and drawing
    every figure again for every N would cost most of the time."""
    from matplotlib.figure import Figure

    def savefig(self, buffer, **kwargs):
        buffer.write(b"\x89PNG\r\n\x1a\n")

    monkeypatch.setattr(Figure, "savefig", savefig)


def cause_of(error: int) -> str:
    text = os.strerror(error)
    return text[:1].lower() + text[1:]  # as charrec.files.describe_os_error writes it


def is_extra(site: str) -> bool:
    return site.startswith(EXTRA_SITES)


def every_fault(root: Path, prepare: Callable[[Path], None], run: Callable[[Path], Any],
                check: Callable[[Any, DiskFaults, Path], None]) -> DiskFaults:
    """Run once to warm up and once to count the operations; then once per operation N with
    the Nth failing, each in its own folder (`prepare(folder)` first, unfaulted), and
    `check(result, faults, folder)`. Returns the counting run (its `sites`)."""
    for name in ("warm", "count"):
        prepare(root / name)
        with DiskFaults() as counting:
            run(root / name)
    assert counting.operations, "the run wrote nothing"
    for number in range(1, len(counting.operations) + 1):
        folder = root / f"n{number}"
        prepare(folder)
        with DiskFaults(fail_at=number, error=DISK_ERRNOS[number % len(DISK_ERRNOS)]) as faults:
            result = run(folder)
        assert faults.failed is not None, f"operation {number} never came: not deterministic"
        check(result, faults, folder)
        shutil.rmtree(folder)
    return counting


def assert_handled(result: Any, faults: DiskFaults, folder: Path, always_extra: bool = False
                   ) -> str | None:
    """No traceback, no temp file; exit 0 with one warning for an extra, else exit 1 with one
    error line; the line names the cause. Returns that line, or None for the one fault that
    changes nothing: `mkdir(exist_ok=True)` of a folder that exists (pathlib ignores the error
    then, as it must: a read-only system may say EROFS before EEXIST)."""
    failed, cause = faults.failed, cause_of(faults.error)
    where = f"operation {failed.number} ({failed.kind} {failed.path} in {failed.site})"
    assert "Traceback" not in result.output, where + "\n" + result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        (where, result.exception)
    assert leftovers(folder) == [], where
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("Model: ")]
    if failed.kind == "mkdir" and Path(failed.path).is_dir() and result.exit_code == 0 \
            and not lines:
        return None
    expected = "Warning:" if always_extra or is_extra(failed.site) else "Error:"
    assert result.exit_code == (0 if expected == "Warning:" else 1), (where, result.output)
    assert len(lines) == 1 and lines[0].startswith(expected), (where, result.stderr)
    assert cause in lines[0], (where, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------- train


def test_every_write_of_train_failing(tiny, previous, tmp_path):
    def prepare(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "m.pth").write_bytes(previous)

    def run(folder: Path) -> Any:
        return invoke("train", "--data-dir", tiny, *TRAIN, "--out", folder / "m.pth")

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder)
        out, kept = folder / "m.pth", previous_path(folder / "m.pth")
        assert previous in (out.read_bytes(), kept.read_bytes() if kept.exists() else None)
        checkpoint = load_checkpoint(out)  # the old model or a complete one of this run
        if result.exit_code == 0:  # the model is saved; only the curves may have failed
            assert kept.read_bytes() == previous
            assert checkpoint["metrics"]["last_epoch"] == 1
            assert line is None or "curves" in line
        else:
            assert "could not" in line or "cannot" in line

    counting = every_fault(tmp_path, prepare, run, check)
    assert {"train.check_destinations", "checkpoint.keep_previous_checkpoint",
            "checkpoint.save_checkpoint", "chart.save_chart"} <= counting.sites


# ---------------------------------------------------------------------------- test, predict


def test_every_write_of_test_with_its_plot_failing(tiny, previous, tmp_path, quick_plots):
    model = tmp_path / "model.pth"
    model.write_bytes(previous)

    def run(folder: Path) -> Any:
        return invoke("test", "--model", model, "--data-dir", tiny, "--plot",
                      folder / "plots" / "confusion.png")

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder, always_extra=True)
        assert "Accuracy on" in result.stdout
        if line is not None:
            assert "confusion matrix" in line and "Confusion matrix:" not in result.stdout

    counting = every_fault(tmp_path, lambda folder: folder.mkdir(), run, check)
    assert "report.save_figure" in counting.sites
    assert model.read_bytes() == previous


def test_every_write_of_predict_sheet_failing(tiny, previous, tmp_path):
    model = tmp_path / "model.pth"
    model.write_bytes(previous)
    images = sorted((tiny / "images").iterdir())[:3]

    def run(folder: Path) -> Any:
        return invoke("predict", "--model", model, *images, "--sheet", folder / "sheet.png")

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder, always_extra=True)
        assert line is None or ("contact sheet" in line and "--sheet" in line)
        assert result.stdout.count("Prediction:") == 3

    counting = every_fault(tmp_path, lambda folder: folder.mkdir(), run, check)
    assert "data.contact_sheet.save_contact_sheet" in counting.sites


def test_every_write_of_an_export_failing(tiny, previous, tmp_path):
    pytest.importorskip("onnxruntime")
    model = tmp_path / "model.pth"
    model.write_bytes(previous)

    def prepare(folder: Path) -> None:
        folder.mkdir()
        (folder / "m.onnx").write_bytes(b"the previous export")

    def run(folder: Path) -> Any:
        return invoke("export", "--model", model, "--out", folder / "m.onnx")

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder)
        if line is not None:
            assert "could not write the ONNX model" in line
            assert (folder / "m.onnx").read_bytes() == b"the previous export"

    counting = every_fault(tmp_path, prepare, run, check)
    assert "export.export_model" in counting.sites


# ---------------------------------------------------------------------------------- sweep


def test_every_write_of_a_two_trial_sweep_failing_then_resume_finishes(tiny, tmp_path,
                                                                       quick_plots):
    def prepare(folder: Path) -> None:
        folder.mkdir()
        (folder / "sweep.yaml").write_text(SWEEP.format(data=tiny))

    def run(folder: Path) -> Any:
        return invoke("sweep", folder / "sweep.yaml", "--out-dir", folder / "run", *ONE_THREAD)

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder) or ""
        run_dir = folder / "run"
        if not (run_dir / "run.json").exists():  # failed before the run folder was complete
            assert not run_dir.exists() and "--resume" not in line, line
            return
        if result.exit_code:
            assert f"Continue with: charrec sweep --resume {run_dir}" in line
            rows = RunFolder(run_dir).read_results()
            if faults.failed.site.startswith(("checkpoint.", "train.")):  # in a trial
                assert [row["status"] for row in rows if row.get("rerun")] == ["failed"]
                assert "failed:" in result.stdout
            resumed = invoke("sweep", "--resume", run_dir, *ONE_THREAD)
            assert resumed.exit_code == 0, resumed.output
            assert leftovers(folder) == []
        rows = finished_rows(RunFolder(run_dir).read_results())
        assert [row["status"] for row in rows] == ["ok", "ok"]

    counting = every_fault(tmp_path, prepare, run, check)
    assert {"cli.sweep.check_destinations", "sweep.runner.create", "sweep.runner._write_text",
            "sweep.runner.append", "train.check_destinations", "checkpoint.save_checkpoint",
            "report.save_figure"} <= counting.sites


# ------------------------------------------------------- rendering, importing, the font cache


def test_every_write_of_rendering_the_built_in_letters_failing(tmp_path):
    def counted(kind: str, path: str) -> bool:  # the first two images stand for all of them
        name = Path(path).name
        return not (name.endswith(".png") and name[:6].isdigit() and int(name[:6]) >= 2)

    def run(folder: Path) -> Any:
        return invoke("data", "synth", "--out", folder / "letters", "--per-class", "3",
                      "--norm-size", "12,12", "--workers", "1")

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        line = assert_handled(result, faults, folder)
        if line is not None:
            assert "could not write the built-in letters" in line
            assert not (folder / "letters").exists()

    original = DiskFaults.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.counted = counted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DiskFaults, "__init__", init)
        counting = every_fault(tmp_path, lambda folder: folder.mkdir(), run, check)
    assert "data.builtin.synth._render_chunk" in counting.sites


def test_every_write_of_an_import_failing(tmp_path):
    from charrec.data.importing import import_dataset
    from charrec.errors import WriteError

    source = make_folder_dataset(tmp_path / "source", per_class=1)

    def run(folder: Path) -> Any:
        try:
            return import_dataset(source, folder / "imported", workers=1)
        except WriteError as error:
            return error

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        if faults.failed.kind == "mkdir" and Path(faults.failed.path).is_dir():
            assert not isinstance(result, WriteError)  # exist_ok: the error changes nothing
            return
        assert isinstance(result, WriteError), faults.failed
        assert cause_of(faults.error) in str(result)
        assert "could not write the imported dataset" in str(result)
        assert not (folder / "imported").exists() and leftovers(folder) == []

    counting = every_fault(tmp_path, lambda folder: folder.mkdir(), run, check)
    assert {"data.importing._build", "data.importing.save"} <= counting.sites


def test_every_write_of_the_font_cache_failing(tmp_path, monkeypatch):
    from charrec.data.builtin import font_cache, fonts
    from charrec.errors import CharrecWarning

    files = sorted(fonts.candidate_files(()))[:2]
    if not files:
        pytest.skip("no font files here")

    def prepare(folder: Path) -> None:  # a fresh cache: it is written
        folder.mkdir()
        monkeypatch.setenv(font_cache.CACHE_DIR_ENV, str(folder / "cache"))

    def run(folder: Path) -> Any:
        with pytest.warns(CharrecWarning) if folder.name.startswith("n") else \
                _no_warning() as caught:
            found = font_cache.faces_of_files(files, fonts._faces_in, fonts.FontFace)
        return found, caught

    def check(result: Any, faults: DiskFaults, folder: Path) -> None:
        found, caught = result
        assert set(found) == set(files)  # the fonts are found all the same
        assert len(caught) == 1 and cause_of(faults.error) in str(caught[0].message)
        assert leftovers(folder) == []

    counting = every_fault(tmp_path, prepare, run, check)
    assert "data.builtin.font_cache._write" in counting.sites


class _no_warning:
    def __enter__(self) -> list:
        return []

    def __exit__(self, *exc_info: Any) -> None:
        return None
