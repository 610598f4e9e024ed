"""`charrec sweep`: expansion, validation, results files, failures, resume, parallel runs.

Trials are tiny (16x16 images, 8 hidden units, 2 epochs on the shared small course dataset) so
that a whole sweep takes about a second.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from charrec import train as train_module
from charrec.cli import app
from charrec.config import load_train_yaml, make_config
from charrec.errors import ConfigError
from charrec.sweep import executors
from charrec.sweep import trial as sweep_trial
from charrec.sweep.executors import InlineExecutor
from charrec.sweep.results import summarise
from charrec.sweep.runner import RunFolder, SweepStatus, run_sweep
from charrec.sweep.spec import expand, load_sweep, points, sweep_from_dict
from charrec.sweep.trial import save_data_file, trial_data

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY_BASE = """\
base:
  data_dir: {data}
  norm-size: 16,16
  hidden: 8
  epochs: 2
  batch_size: 32
  optim: sgd
  lr: 0.05
"""


def write_sweep(directory: Path, data: Path, body: str, name: str = "tiny") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + TINY_BASE.format(data=data) + textwrap.dedent(body))
    return path


def invoke(*args: str):
    return runner.invoke(app, ["sweep", *map(str, args)])


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture
def momentum_sweep(tmp_path, course_dataset) -> Path:
    return write_sweep(tmp_path, course_dataset, """\
        grid:
          momentum: [0.5, 0.9]
        repeats: 2
        """)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, course_dataset) -> tuple[Path, str]:
    """One complete 2-point x 2-repeat sweep run through the CLI, shared by the file checks."""
    directory = tmp_path_factory.mktemp("sweep")
    config = write_sweep(directory, course_dataset, """\
        grid:
          momentum: [0.5, 0.9]
        repeats: 2
        """)
    result = invoke(config, "--out-dir", directory / "run", "--jobs", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    return directory / "run", result.output


# ---------------------------------------------------------------------------------- expansion


def test_grid_is_the_cartesian_product_times_repeats(course_dataset):
    spec = sweep_from_dict({
        "name": "g", "base": {"data_dir": str(course_dataset), "layers": 2, "seed": 5},
        "grid": {"momentum": [0.8, 0.9], "hidden": [8, "8,4"]}, "repeats": 2})
    trials = expand(spec)
    assert [(t.point, t.repeat) for t in trials] == [(p, r) for p in range(4) for r in range(2)]
    assert [t.options for t in trials[::2]] == [
        {"momentum": 0.8, "hidden": 8}, {"momentum": 0.8, "hidden": "8,4"},
        {"momentum": 0.9, "hidden": 8}, {"momentum": 0.9, "hidden": "8,4"}]
    assert [t.config["seed"] for t in trials[:2]] == [5, 6]
    # a varied hidden list defines the depth (base layers: 2 would contradict "8,4")
    assert trials[2].config["hidden"] == [8, 4] and trials[2].config["layers"] == 3
    assert [t.trial_id for t in trials[:2]] == ["t000", "t001"]


def test_varied_layers_repeat_a_single_hidden_width():
    spec = sweep_from_dict({"name": "d", "base": {"hidden": 8}, "grid": {"layers": [1, 2, 3]}})
    assert [(t.config["layers"], t.config["hidden"]) for t in expand(spec)] == \
        [(1, []), (2, [8]), (3, [8, 8])]


SHIPPED_SWEEPS = sorted(path for path in CONFIGS.glob("*.yaml")
                        if "base" in yaml.safe_load(path.read_text()))


def test_the_shipped_sweeps_are_the_built_in_studies():
    from charrec.studies import builtin_configs

    studies = {config.name for config in builtin_configs().values() if config.is_sweep}
    assert {path.stem for path in SHIPPED_SWEEPS} == studies and len(studies) >= 10


@pytest.mark.parametrize("config", SHIPPED_SWEEPS, ids=lambda path: path.name)
def test_shipped_sweep_configs_are_valid(config):
    result = invoke(config, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "trials. Nothing was run" in result.output


def test_random_search_is_seeded_and_stays_in_range():
    def spec(seed: int):
        return sweep_from_dict({"name": "r", "random": {"trials": 12, "seed": seed, "params": {
            "lr": {"log_uniform": [1e-4, 1e-1]}, "batch_size": {"uniform": [8, 64]},
            "hidden": {"choice": ["64", "32,16"]}}}})

    samples = points(spec(3))
    assert samples == points(spec(3)) and samples != points(spec(4))
    assert len(samples) == 12 and len(expand(spec(3))) == 12
    assert all(1e-4 <= s["lr"] <= 1e-1 for s in samples)
    assert all(isinstance(s["batch_size"], int) and 8 <= s["batch_size"] <= 64 for s in samples)
    assert {s["hidden"] for s in samples} == {"64", "32,16"}
    # log-uniform: about as many samples per decade
    assert sum(s["lr"] < 1e-2 for s in samples) >= 4


# --------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("body", "expected"), [
    ("grids:\n  momentum: [0.9]\n", ["grids", "unknown sweep key", "line 10"]),
    ("base2: {}\n", ["base2", "line 10"]),
    ("grid:\n  momentum: [0.9, fast]\n", ["grid.momentum[1]", "line 11", "number"]),
    ("grid:\n  momentum:\n    - 0.9\n    - 1.5\n", ["grid.momentum[1]", "line 13",
                                                      "at most 1"]),
    ("grid:\n  momentum: []\n", ["grid.momentum", "line 11", "empty"]),
    ("grid:\n  momentum: 0.9\n", ["grid.momentum", "expected a list"]),
    ("grid:\n  momentom: [0.9]\n", ["grid.momentom", "unknown option", "line 11"]),
    ("grid:\n  batch_size: [16, 0]\n", ["grid.batch_size[1]", "at least 1"]),
    ("grid:\n  out: [a.pth]\n", ["grid.out", "set per trial"]),
    ("repeats: 0\n", ["repeats", "at least 1"]),
    ("repeats: two\n", ["repeats", "integer"]),
    ("random:\n  trials: 3\n  params:\n    lr: {log_uniform: [0, 0.1]}\n",
     ["random.params.lr.log_uniform", "line 13", "low > 0"]),
    ("random:\n  trials: 3\n  params:\n    lr: {normal: [0, 1]}\n",
     ["random.params.lr", "exactly one of choice, uniform, log_uniform"]),
    ("random:\n  trials: 3\n  params:\n    act: {uniform: [0, 1]}\n", ["numeric option"]),
    ("random:\n  trials: 3\n  params:\n    momentum: {uniform: [0.5, 2]}\n",
     ["random.params.momentum.uniform[1]", "at most 1"]),
    ("random:\n  params:\n    lr: {choice: [0.1]}\n", ["random.trials", "integer"]),
    ("grid:\n  layers: [1, 2]\n", ["point 0 (layers=1)", "linear classifier"]),
    ("grid:\n  lr: [0.1]\nrandom:\n  trials: 2\n  params:\n    lr: {choice: [0.1]}\n",
     ["either grid: or random:"]),
])
def test_invalid_sweep_files_name_the_key_and_line(tmp_path, course_dataset, body, expected):
    config = write_sweep(tmp_path, course_dataset, body)
    if "layers" in body:  # hidden 8 + layers 1 is the inconsistent combination
        config.write_text(config.read_text().replace("hidden: 8", "hidden: 8,8"))
    with pytest.raises(ConfigError) as error:
        load_sweep(config)
    for text in expected:
        assert text in str(error.value), str(error.value)
    assert str(config) in str(error.value)


def test_unknown_base_option_names_file_and_line(tmp_path, course_dataset):
    config = write_sweep(tmp_path, course_dataset, "grid:\n  lr: [0.1]\n")
    config.write_text(config.read_text().replace("  optim: sgd", "  optimiser: sgd"))
    result = invoke(config, "--out-dir", tmp_path / "run")
    assert result.exit_code == 2  # a usage error
    assert "base.optimiser" in result.output and "line 8" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing ran


def test_set_overrides_base_but_not_varied_options(tmp_path, course_dataset, momentum_sweep):
    spec = load_sweep(momentum_sweep, {"epochs": 3, "weight-decay": 0.1})
    assert {t.config["epochs"] for t in expand(spec)} == {3}
    assert {t.config["weight_decay"] for t in expand(spec)} == {0.1}
    with pytest.raises(ConfigError, match="varied by the sweep"):
        load_sweep(momentum_sweep, {"momentum": 0.1})
    result = invoke(momentum_sweep, "--set", "epochs", "--dry-run")
    assert result.exit_code == 2  # a usage error and "KEY=VALUE" in result.output


def test_dry_run_lists_trials_and_runs_nothing(tmp_path, momentum_sweep):
    result = invoke(momentum_sweep, "--dry-run", "--out-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "2 point(s) × 2 repeat(s) = 4 trials" in result.output
    assert all(trial in result.output for trial in ("t000", "t001", "t002", "t003"))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- a whole run


def test_results_files_of_a_finished_run(finished_run):
    run_dir, output = finished_run
    rows = read_rows(run_dir)
    assert [row["trial"] for row in sorted(rows, key=lambda r: r["index"])] == \
        ["t000", "t001", "t002", "t003"]
    for row in rows:
        assert row["status"] == "ok"
        assert row["options"] == {"momentum": [0.5, 0.5, 0.9, 0.9][row["index"]]}
        assert row["seed"] == row["repeat"] and row["config"]["seed"] == row["seed"]
        assert [epoch["epoch"] for epoch in row["history"]] == [1, 2]
        assert 1 <= row["best_epoch"] <= 2 and 0 <= row["test_accuracy"] <= 1
        assert row["val_accuracy"] == max(epoch["val_accuracy"] for epoch in row["history"])
        assert row["last_val_accuracy"] == row["history"][-1]["val_accuracy"]
        assert Path(row["checkpoint"]).is_file()
    with open(run_dir / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [line["trial"] for line in table] == ["t000", "t001", "t002", "t003"]
    assert [line["momentum"] for line in table] == ["0.5", "0.5", "0.9", "0.9"]
    assert float(table[3]["val_accuracy"]) == pytest.approx(rows[3]["val_accuracy"])
    assert float(table[3]["last_val_accuracy"]) == pytest.approx(rows[3]["last_val_accuracy"])
    stored = yaml.safe_load((run_dir / "sweep.yaml").read_text())
    assert stored["grid"] == {"momentum": [0.5, 0.9]} and stored["repeats"] == 2
    assert {path.name for path in (run_dir / "plots").iterdir()} == \
        {"val_accuracy_vs_epoch.png", "accuracy_vs_momentum.png", "curves"}
    assert sorted(path.name for path in (run_dir / "plots" / "curves").iterdir()) == \
        ["t000.png", "t001.png", "t002.png", "t003.png"]
    best_point = yaml.safe_load((run_dir / "best.yaml").read_text())["base"]["momentum"] == 0.9
    assert f"* {int(best_point)}" in output and "Val %" in output and "best.yaml" in output
    assert "Last val: validation accuracy (%) at the last epoch" in output  # a column's legend


def test_best_yaml_is_the_best_point_and_trains(finished_run, tmp_path):
    run_dir, _ = finished_run
    rows = [row for row in read_rows(run_dir) if row["status"] == "ok"]
    means = {m: sum(r["val_accuracy"] for r in rows if r["options"]["momentum"] == m) / 2
             for m in (0.5, 0.9)}
    best_momentum = 0.5 if means[0.5] >= means[0.9] else 0.9
    options = load_train_yaml(run_dir / "best.yaml")
    assert options["momentum"] == best_momentum and "out" not in options
    out = tmp_path / "best.pth"
    result = runner.invoke(app, ["train", "--config", str(run_dir / "best.yaml"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert checkpoint["config"]["momentum"] == best_momentum
    assert checkpoint["config"]["hidden"] == [8] and checkpoint["config"]["epochs"] == 2
    # same options and seed as the best trial: the same validation accuracy
    best_row = max((r for r in rows if r["options"]["momentum"] == best_momentum),
                   key=lambda r: r["val_accuracy"])
    assert checkpoint["metrics"]["best_val_accuracy"] == pytest.approx(best_row["val_accuracy"])


def test_keep_best_leaves_only_the_best_checkpoint(tmp_path, momentum_sweep):
    result = invoke(momentum_sweep, "--out-dir", tmp_path / "run", "--jobs", "1", "--threads", "1",
                    "--keep", "best")
    assert result.exit_code == 0, result.output
    kept = sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir())
    assert len(kept) == 1
    best_seed = load_train_yaml(tmp_path / "run" / "best.yaml")["seed"]
    best_momentum = load_train_yaml(tmp_path / "run" / "best.yaml")["momentum"]
    row = next(r for r in read_rows(tmp_path / "run") if r["trial"] == kept[0][:-4])
    assert (row["seed"], row["options"]["momentum"]) == (best_seed, best_momentum)


# ----------------------------------------------------------------------------------- failures


def test_diverging_and_raising_trials_are_recorded_and_the_sweep_goes_on(
        tmp_path, course_dataset, monkeypatch):
    config = write_sweep(tmp_path, course_dataset, """\
        grid:
          lr: [1.0e+30, 5e-2]  # 5e-2 is a string to YAML; charrec reads it as a number
          hidden: [8, 9]
        """)
    real_run = train_module.run

    def train_failing_for_hidden_9(config, *args, **kwargs):
        if config.hidden == (9,) and config.lr < 1:
            raise RuntimeError("boom")
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(train_module, "run", train_failing_for_hidden_9)
    result = invoke(config, "--out-dir", tmp_path / "run", "--jobs", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    rows = {row["trial"]: row for row in read_rows(tmp_path / "run")}
    assert [rows[t]["status"] for t in ("t000", "t001", "t002", "t003")] == \
        ["failed", "failed", "ok", "failed"]
    assert rows["t000"]["reason"].startswith("diverged: training diverged at epoch")
    assert rows["t003"]["reason"] == "RuntimeError: boom" and "boom" in rows["t003"]["traceback"]
    assert "failed" in result.output and "boom" in result.output
    assert load_train_yaml(tmp_path / "run" / "best.yaml")["hidden"] == [8]
    assert {path.name for path in (tmp_path / "run" / "plots").iterdir()} == {
        "val_accuracy_vs_epoch.png", "accuracy_vs_lr.png", "accuracy_vs_hidden.png", "curves"}
    assert [path.name for path in (tmp_path / "run" / "plots" / "curves").iterdir()] == \
        ["t002.png"]  # the one trial that trained


def test_every_trial_failing_is_a_clear_error(tmp_path, course_dataset):
    config = write_sweep(tmp_path, course_dataset, "grid:\n  lr: [1.0e+30]\n")
    result = invoke(config, "--out-dir", tmp_path / "run", "--jobs", "1", "--threads", "1")
    assert result.exit_code == 1 and "every trial failed" in result.output
    assert read_rows(tmp_path / "run")[0]["status"] == "failed"


# ------------------------------------------------------------------------------------- resume


def test_interrupted_run_resumes_only_unfinished_trials(tmp_path, momentum_sweep, monkeypatch):
    real_run, calls = train_module.run, []

    def train_interrupted_at_third(config, *args, **kwargs):
        calls.append(config.seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(train_module, "run", train_interrupted_at_third)
    run_dir = tmp_path / "run"
    result = invoke(momentum_sweep, "--out-dir", run_dir, "--jobs", "1", "--threads", "1")
    assert result.exit_code == 130 and f"--resume {run_dir}" in result.output
    first_lines = (run_dir / "results.jsonl").read_text()
    assert [row["trial"] for row in read_rows(run_dir)] == ["t000", "t001"]
    # a crash mid-write leaves a torn line: it is dropped, its trial runs again
    with open(run_dir / "results.jsonl", "a") as handle:
        handle.write('{"trial": "t002", "index": 2, "sta')

    monkeypatch.setattr(train_module, "run", real_run)
    calls.clear()
    result = invoke("--resume", run_dir, "--jobs", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "2 of 4 trials already finished" in result.output
    assert (run_dir / "results.jsonl").read_text().startswith(first_lines)
    assert [row["trial"] for row in read_rows(run_dir)] == ["t000", "t001", "t002", "t003"]
    assert (run_dir / "best.yaml").is_file()


def test_resume_refuses_a_changed_config(tmp_path, momentum_sweep):
    run_dir = tmp_path / "run"
    assert invoke(momentum_sweep, "--out-dir", run_dir, "--jobs", "1").exit_code == 0
    before = (run_dir / "results.jsonl").read_text()
    momentum_sweep.write_text(momentum_sweep.read_text().replace("lr: 0.05", "lr: 0.02"))
    result = invoke(momentum_sweep, "--resume", run_dir)
    assert result.exit_code == 2  # a usage error
    assert "config changed" in result.output and "lr was 0.05, now 0.02" in result.output
    result = invoke("--resume", run_dir, "--set", "epochs=3")
    assert result.exit_code == 2 and "epochs was 2, now 3" in result.output
    assert (run_dir / "results.jsonl").read_text() == before
    result = invoke("--resume", tmp_path)
    assert result.exit_code == 2 and "not a sweep run folder" in result.output


def test_run_folder_refuses_to_overwrite(tmp_path, momentum_sweep):
    spec = load_sweep(momentum_sweep)
    RunFolder.create(tmp_path / "run", spec, expand(spec))
    with pytest.raises(ConfigError, match="already exists"):
        RunFolder.create(tmp_path / "run", spec, expand(spec))


# ----------------------------------------------------------------------------------- parallel


def test_two_jobs_give_the_same_results_as_one(tmp_path, momentum_sweep, finished_run,
                                               monkeypatch):
    serial_dir, _ = finished_run  # the same sweep file content, run with --jobs 1
    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    result = invoke(momentum_sweep, "--out-dir", tmp_path / "run")  # default: a job per core
    assert result.exit_code == 0, result.output
    assert "4 trials, 2 at a time (1 torch thread(s) each)" in result.output
    serial = {row["trial"]: row for row in read_rows(serial_dir)}
    parallel = {row["trial"]: row for row in read_rows(tmp_path / "run")}
    assert set(parallel) == set(serial)
    for trial, row in parallel.items():
        assert row["pid"] != os.getpid()  # ran in a worker process
        for key in ("val_accuracy", "test_accuracy", "best_epoch"):
            assert row[key] == serial[trial][key], (trial, key)
        assert [e["train_loss"] for e in row["history"]] == \
            [e["train_loss"] for e in serial[trial]["history"]]
    assert not list((tmp_path / "run").glob(".data-*"))  # the shared decoded images are gone


def test_default_jobs_is_a_trial_per_core_with_one_thread_each(monkeypatch):
    monkeypatch.setattr(executors, "available_cores", lambda: 4)
    assert [executors.default_jobs(trials) for trials in (0, 1, 3, 4, 50)] == [1, 1, 3, 4, 4]
    assert executors.default_jobs(50, threads=2) == 2  # explicit --threads: cores // threads
    assert executors.default_jobs(50, threads=8) == 1
    assert [executors.threads_per_job(jobs) for jobs in (1, 2, 4, 8)] == [4, 1, 1, 1]
    assert executors.make_executor(3).threads == 1
    assert executors.make_executor(3, threads=2).threads == 2


def test_eta_comes_from_this_sessions_trials_and_the_parallel_jobs():
    earlier = {"pid": 1, "wall_seconds": 1000.0}  # finished before a resume: not counted
    status = SweepStatus(total=10, done=1, skipped=1, running=2, rows=[earlier])
    assert status.eta_seconds() is None  # nothing finished yet in this session
    status.rows += [{"pid": 2, "wall_seconds": 10.0}, {"pid": 3, "wall_seconds": 20.0}]
    status.done = 3
    assert status.eta_seconds() == pytest.approx(15.0 * 7 / 2)
    # once a worker has finished a second trial, the first ones (which paid for the imports)
    # no longer count
    status.rows += [{"pid": 2, "wall_seconds": 4.0}, {"pid": 3, "wall_seconds": 6.0}]
    status.done = 5
    assert status.eta_seconds() == pytest.approx(5.0 * 5 / 2)
    status.running, status.done = 1, 9
    assert status.eta_seconds() == pytest.approx(5.0)
    status.done = 10
    assert status.eta_seconds() == 0.0


def test_off_a_terminal_each_finished_trial_is_one_line_with_the_eta(finished_run):
    _, output = finished_run
    lines = [line for line in output.splitlines() if line.startswith("t00")]
    assert [line.split("  [")[1].split(",")[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(", ETA " in line for line in lines) and lines[-1].endswith("ETA 0:00:00]")
    assert "trials ━" not in output and "━━━" not in output.split("Sweep tiny: mean")[0]


def test_last_epoch_accuracy_of_rows_written_before_it_was_recorded():
    history = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.75},
               {"epoch": 3, "val_accuracy": 0.25}]
    rows = [{"index": 0, "point": 0, "status": "ok", "val_accuracy": 0.75, "history": history},
            {"index": 1, "point": 0, "status": "ok", "val_accuracy": 0.75,
             "last_val_accuracy": 0.75, "history": history}]
    trials = expand(sweep_from_dict({"name": "s", "grid": {"momentum": [0.9]}, "repeats": 2}))
    summary, = summarise(trials, rows)
    assert summary.stat("last_val_accuracy") == pytest.approx((0.5, 2 ** 0.5 * 0.25))
    assert summary.stat("val_accuracy") == (0.75, 0.0)


def test_built_in_letters_are_rendered_once_by_the_training_data_step(tmp_path, monkeypatch):
    from charrec.data import loading
    from charrec.data.builtin import synth

    monkeypatch.setattr(synth, "render_dataset",
                        functools.partial(synth.render_dataset, per_class=10))
    letters = tmp_path / "letters"  # missing: the sweep renders the built-in letters there
    config = write_sweep(tmp_path, letters, "grid:\n  momentum: [0.5, 0.9]\n")
    # at the size the letters are rendered, they come from memory, not decoded from the files
    config.write_text(config.read_text().replace("epochs: 2", "epochs: 1")
                      .replace("norm-size: 16,16", "norm-size: 32,32"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the letters rendered just now were decoded again from their files")

    monkeypatch.setattr(train_module, "load_splits", no_decoding)
    monkeypatch.setattr(loading, "load_splits", no_decoding)
    result = invoke(config, "--out-dir", tmp_path / "run", "--jobs", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "generating the built-in synthetic letters there" in result.output
    assert "Generated 260 images" in result.output and "Data: train 208," in result.output
    rows = read_rows(tmp_path / "run")
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert all(row["config"]["augment"] is True for row in rows)  # auto: on for these letters


def test_decoded_data_file_gives_the_same_tensors(tmp_path, course_dataset):
    config = make_config({"data_dir": str(course_dataset), "norm_size": "16,16"})
    _, decoded = trial_data(config)
    path = save_data_file(tmp_path / "data.pt", decoded)
    sweep_trial._DATA_CACHE.clear()
    _, loaded = trial_data(config, data_file=str(path))
    for split, letters in decoded.items():
        assert torch.equal(loaded[split].images, letters.images)
        assert torch.equal(loaded[split].labels, letters.labels)
        assert loaded[split].paths == letters.paths


def test_library_run_with_inline_executor(tmp_path, momentum_sweep):
    spec = load_sweep(momentum_sweep)
    trials = expand(spec)
    folder = RunFolder.create(tmp_path / "run", spec, trials)
    seen = []
    status = run_sweep(folder, spec, trials, InlineExecutor(threads=1), keep="none",
                       on_progress=lambda s: seen.append((s.done, s.running)))
    assert seen == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 0)]
    assert status.done == 4 and status.failed == 0 and status.best is not None
    assert not any((tmp_path / "run" / "checkpoints").iterdir())
