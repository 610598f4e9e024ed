"""Ctrl-C at random instants: one line, exit 130, never a traceback, nothing lost.

Two kinds of test. Real processes: `charrec train`, `charrec data synth --workers 2` and
`charrec sweep --jobs 2` are started in their own process group and SIGINT goes to the whole
group, as a terminal's Ctrl-C does (workers included). Each waits for a marker (the child says
it is running; for sweeps, every worker has set up its signals) and then for a random fraction
of a calibrated run time. Many instants, cheaply: one child process runs `charrec train` and
`charrec test` again and again in-process and interrupts each run at a random instant of its
CPU time, delivered exactly as a SIGINT is (through whatever handler is installed then, so
deferred writes are exercised), and only while charrec's own code is running.

The outcome never depends on where the instant falls; only which guarantee applies does
(before the first epoch: the previous model is untouched; after one: a loadable best-so-far
model from this run). Instants come from fixed seeds. `pytest -m slow` runs many more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from charrec.checkpoint import load_checkpoint, load_model
from tests.helpers import invoke, make_course_dataset

LAUNCH = ("import sys; print('charrec-started', flush=True); sys.argv[0] = 'charrec'; "
          "from charrec.__main__ import main; main()")
MANY = 20  # subprocess instants of `charrec train` with `-m slow` (the default run: 2)
INPROCESS_FEW, INPROCESS_MANY = 16, 400
PROC_CHILDREN = Path(f"/proc/self/task/{os.getpid()}/children").exists()


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> Path:
    return make_course_dataset(tmp_path_factory.mktemp("interrupts") / "letters", per_class=6)


@pytest.fixture(scope="module")
def previous_model(letters, tmp_path_factory) -> Path:
    """The model a user already has at --out before the interrupted run."""
    out = tmp_path_factory.mktemp("previous") / "recognition.pth"
    result = invoke("train", "--data-dir", letters, "--hidden", "16", "--epochs", "1",
                    "--batch-size", "16", "--out", out)
    assert result.exit_code == 0, result.output
    return out


# ------------------------------------------------------------------------- real processes


def default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def launch(*args: object, cwd: Path | None = None) -> subprocess.Popen:
    """Start `charrec ARGS` in a new process group; return once its Python is running ours
    (an interrupt inside Python's own start-up, before any charrec code, is Python's)."""
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *map(str, args)], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
        # a background job of a non-interactive shell starts with SIGINT ignored (and nohup
        # ignores SIGHUP); a terminal does not: give the child the default dispositions
        preexec_fn=default_signals)
    assert process.stdout.readline() == "charrec-started\n"
    return process


def ctrl_c(process: subprocess.Popen) -> tuple[int, str, str]:
    """SIGINT to the whole process group, as a terminal sends it; wait for the end."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:  # already finished
        pass
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def assert_clean_end(code: int, stdout: str, stderr: str) -> None:
    assert code in (0, 130), (code, stdout, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == 130:
        assert len(lines) == 1 and lines[0].startswith("Error:"), stderr
    else:
        assert lines == [], stderr


def assert_group_gone(process: subprocess.Popen) -> None:
    """No worker outlives the command (they end with it, not minutes later)."""
    for _ in range(200):
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("worker processes were still running 10 s after the command ended")


def timed_run(*args: object) -> float:
    """Seconds from the marker to the end of an uninterrupted run (to spread the instants)."""
    process = launch(*args)
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return time.monotonic() - started


def instants(seed: int, count: int) -> list[float]:
    """Fractions of a run: fixed per seed, spread over the whole run."""
    rng = random.Random(seed)
    return [rng.random() for _ in range(count)]


def train_args(letters: Path, out: Path) -> list[object]:
    return ["train", "--data-dir", letters, "--hidden", "32", "--epochs", "3",
            "--batch-size", "16", "--out", out]


def check_training_outcome(code: int, stdout: str, stderr: str, out: Path,
                           previous: bytes) -> str:
    """The guarantees after an interrupted `charrec train` into an existing --out; returns
    which one applied."""
    assert_clean_end(code, stdout, stderr)
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")], "temp files"
    backup = out.with_name(out.stem + ".prev" + out.suffix)
    if backup.exists():
        assert backup.read_bytes() == previous
    # the epochs reported (a line may show twice: rich repeats lines it printed under a live
    # progress display when the output is not a terminal)
    epoch_lines = {int(line.split()[1]) for line in stdout.splitlines()
                   if line.startswith("epoch ")}
    if out.read_bytes() == previous:
        assert not epoch_lines, "an epoch finished but its model was not saved"
        load_model(out)
        return "previous model untouched"
    assert backup.exists(), "the previous model was replaced without a copy"
    checkpoint = load_checkpoint(out)
    load_model(out)
    assert checkpoint["metrics"]["best_epoch"] >= 1
    assert len(checkpoint["metrics"]["history"]) >= max(epoch_lines, default=0)
    return "best-so-far model saved"


def interrupt_training(letters: Path, previous_model: Path, folder: Path, fractions: list[float],
                       seconds: float | None = None) -> list[str]:
    """Interrupt at `fractions` of `seconds` (default: of a calibration run's length)."""
    seconds = seconds or timed_run(*train_args(letters, folder / "calibration.pth"))
    outcomes = []
    for index, fraction in enumerate(fractions):
        out = folder / str(index) / "recognition.pth"
        out.parent.mkdir()
        out.write_bytes(previous_model.read_bytes())
        process = launch(*train_args(letters, out))
        time.sleep(fraction * seconds)
        outcomes.append(check_training_outcome(*ctrl_c(process), out,
                                               previous_model.read_bytes()))
    return outcomes


def test_ctrl_c_at_random_instants_of_charrec_train(letters, previous_model, tmp_path):
    """Within the first 3 s: start-up, imports, reading data (the in-process test below
    covers the rest of a run at many more instants)."""
    interrupt_training(letters, previous_model, tmp_path, instants(1, 2), seconds=3.0)


@pytest.mark.slow
def test_ctrl_c_at_many_random_instants_of_charrec_train(letters, previous_model, tmp_path):
    outcomes = interrupt_training(letters, previous_model, tmp_path, instants(2, MANY))
    assert len(set(outcomes)) == 2, outcomes  # both guarantees were exercised


def test_ctrl_c_right_after_an_epoch_line_while_the_checkpoint_is_written(
        letters, previous_model, tmp_path):
    """The issue's case: Ctrl-C within moments of an `epoch N` line (the checkpoint is being
    written then) gave a RuntimeError from torch.save and exit 1."""
    check_ctrl_c_after_epoch_lines(letters, previous_model, tmp_path, [0.0])


@pytest.mark.slow
def test_ctrl_c_at_many_instants_after_an_epoch_line(letters, previous_model, tmp_path):
    check_ctrl_c_after_epoch_lines(letters, previous_model, tmp_path,
                                   [0.002 * step for step in range(10)])


def check_ctrl_c_after_epoch_lines(letters: Path, previous_model: Path, tmp_path: Path,
                                   delays: list[float]) -> None:
    for index, delay in enumerate(delays):
        out = tmp_path / str(index) / "recognition.pth"
        out.parent.mkdir()
        out.write_bytes(previous_model.read_bytes())
        process = launch("train", "--data-dir", letters, "--hidden", "512,512", "--epochs", "50",
                         "--batch-size", "16", "--out", out)
        seen = ""
        for line in process.stdout:  # the marker: an epoch has finished
            seen += line
            if line.startswith("epoch "):
                break
        time.sleep(delay)
        code, stdout, stderr = ctrl_c(process)
        assert code == 130
        assert check_training_outcome(code, seen + stdout, stderr, out,
                                      previous_model.read_bytes()) == "best-so-far model saved"
        assert "saved the best model so far" in stderr


def interrupt_rendering(folder: Path, fractions: list[float], seconds: float | None = None
                        ) -> None:
    args = ["data", "synth", "--per-class", "40", "--workers", "2", "--norm-size", "24,24"]
    seconds = seconds or timed_run(*args, "--out", folder / "calibration")
    for index, fraction in enumerate(fractions):
        out = folder / f"letters{index}"
        process = launch(*args, "--out", out)
        time.sleep(fraction * seconds)
        code, stdout, stderr = ctrl_c(process)
        assert_clean_end(code, stdout, stderr)
        assert_group_gone(process)
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        assert not leftovers, leftovers
        if out.exists():  # complete or absent, never half
            assert {p.name for p in out.iterdir()} >= {"images", "manifest.json", "train.json"}
            assert len(list((out / "images").iterdir())) == 40 * 26


def test_ctrl_c_at_a_random_instant_while_rendering_the_built_in_letters(tmp_path):
    """Within the first 4 s: the workers are starting or rendering."""
    interrupt_rendering(tmp_path, instants(3, 1), seconds=4.0)


@pytest.mark.slow
def test_ctrl_c_at_many_random_instants_while_rendering_the_built_in_letters(tmp_path):
    interrupt_rendering(tmp_path, instants(4, MANY // 2))


def workers_ignore_sigint(parent: int, count: int) -> bool:
    """Whether `count` worker processes of `parent` have set SIGINT to ignored (the sweep
    workers do that when they start, then leave Ctrl-C to the parent)."""
    ready = 0
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # e.g. multiprocessing's resource tracker
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        masks = dict(line.split(":\t") for line in status.splitlines() if ":\t" in line)
        if int(masks.get("SigIgn", "0"), 16) & (1 << (signal.SIGINT - 1)):
            ready += 1
    return ready >= count


def interrupt_sweep(folder: Path, letters: Path, fractions: list[float]) -> None:
    sweep = folder / "tiny.yaml"
    sweep.write_text(textwrap.dedent(f"""\
        name: tiny
        base:
          data_dir: {letters}
          norm-size: 16,16
          hidden: 8
          epochs: 3
          batch_size: 16
        grid:
          lr: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
        """))
    for index, fraction in enumerate(fractions):
        run = folder / f"run{index}"
        process = launch("sweep", sweep, "--jobs", "2", "--threads", "1", "--out-dir", run)
        for _ in range(6000):  # the marker: both workers are up (at most 5 minutes)
            if workers_ignore_sigint(process.pid, 2) or process.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(fraction * 3.0)
        code, stdout, stderr = ctrl_c(process)
        assert_clean_end(code, stdout, stderr)
        assert_group_gone(process)
        results = run / "results.jsonl"
        rows = [json.loads(line) for line in results.read_text().splitlines()] \
            if results.exists() else []
        assert all(row["status"] == "ok" for row in rows)
        if code == 130:
            assert "--resume" in stderr


@pytest.mark.skipif(not PROC_CHILDREN, reason="reads the workers' signal state in /proc")
def test_ctrl_c_at_a_random_instant_of_a_sweep_with_two_workers(tmp_path, letters):
    interrupt_sweep(tmp_path, letters, instants(5, 1))


@pytest.mark.slow
@pytest.mark.skipif(not PROC_CHILDREN, reason="reads the workers' signal state in /proc")
def test_ctrl_c_at_many_random_instants_of_a_sweep_with_two_workers(tmp_path, letters):
    interrupt_sweep(tmp_path, letters, instants(6, 6))


# ---------------------------------------------------------------------- SIGTERM and SIGHUP


def wait_for_line(process: subprocess.Popen, start: str) -> str:
    """The child's output up to and including its first line that starts with `start`."""
    seen = ""
    for line in process.stdout:
        seen += line
        if line.startswith(start):
            return seen
    raise AssertionError(f"no line starting with {start!r}: {seen}")


@pytest.mark.parametrize(("name", "to_group", "jobs"), [
    ("SIGTERM", True, "2"),  # a batch scheduler: to every process of the job, workers included
    ("SIGHUP", False, "1"),  # to the sweep alone, trials in its own process
])
def test_sigterm_and_sighup_stop_a_sweep_like_ctrl_c(tmp_path, letters, name, to_group, jobs):
    signum = getattr(signal, name)
    sweep, run = tmp_path / "tiny.yaml", tmp_path / "run"
    sweep.write_text(textwrap.dedent(f"""\
        name: tiny
        base:
          data_dir: {letters}
          norm-size: 16,16
          hidden: 8
          epochs: 2
          batch_size: 16
        grid:
          lr: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]
        """))
    process = launch("sweep", sweep, "--jobs", jobs, "--out-dir", run)
    seen = wait_for_line(process, "t0")  # a trial has finished: its row is kept
    (os.killpg if to_group else os.kill)(process.pid, signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, (seen + stdout, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: interrupted by {name};"), stderr
    assert lines[0].endswith(f"Continue with: charrec sweep --resume {run}"), stderr
    assert_group_gone(process)
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert rows and all(row["status"] == "ok" and row["history"] for row in rows)
    assert len(rows) < 8, "the sweep finished before the signal: make it longer"
    assert not [path.name for path in run.iterdir() if path.name.startswith(".")]

    result = invoke("sweep", "--resume", run, "--jobs", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert sorted(row["index"] for row in rows) == list(range(8))


def test_sigterm_stops_charrec_train_like_ctrl_c(letters, tmp_path):
    out = tmp_path / "recognition.pth"
    process = launch("train", "--data-dir", letters, "--hidden", "512,512", "--epochs", "50",
                     "--batch-size", "16", "--out", out)
    seen = wait_for_line(process, "epoch ")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, (seen + stdout, stderr)
    assert stderr.startswith("Error: interrupted by SIGTERM; saved the best model so far")
    assert load_checkpoint(out)["metrics"]["interrupted"] is True


# ------------------------------------------------------------- many instants, in one process

HARNESS = r'''
import contextlib, io, json, os, random, signal, sys, time
from pathlib import Path

import torch

torch.set_num_threads(1)
from charrec.checkpoint import load_checkpoint, load_model
from charrec.cli import app
from charrec.cli.common import run_app, state

letters, folder, count, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = folder / "recognition.pth"
backup = folder / "recognition.prev.pth"
clock = {"finished": True}


def deliver_sigint(signum, frame):
    """At the chosen CPU instant: if charrec's code is running, do what a SIGINT does
    (call the handler installed now); if not yet, try again a moment later."""
    if clock["finished"]:
        return
    inside = frame
    while inside is not None and inside.f_code is not run_app.__code__:
        inside = inside.f_back
    if inside is None:
        signal.setitimer(signal.ITIMER_PROF, 0.0005)
        return
    clock["finished"] = True
    clock["fired"] = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)


signal.signal(signal.SIGPROF, deliver_sigint)


def attempt(argv, delay):
    # each attempt stands for a fresh `charrec` process: reset what an interrupted one may
    # leave behind in this process (an interrupt inside torch.no_grad's __enter__ leaves
    # gradients off, an interrupted plot leaves its figure open; a process would have ended)
    torch.set_grad_enabled(True)
    if "matplotlib.pyplot" in sys.modules:  # figures an interrupted plot left open
        sys.modules["matplotlib.pyplot"].close("all")
    state.reported = False
    state.debug = False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.argv = ["charrec", *argv]
    code = escaped = None
    clock.update(finished=False, fired=False)
    started = time.process_time()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        if delay:
            signal.setitimer(signal.ITIMER_PROF, delay)
        try:
            run_app(app)
        except SystemExit as exit_:
            code = exit_.code
        except BaseException as error:
            escaped = repr(error)
        finally:
            clock["finished"] = True
            signal.setitimer(signal.ITIMER_PROF, 0)
    return {"argv": argv[0], "delay": delay, "code": code, "escaped": escaped,
            "fired": clock["fired"], "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "cpu": time.process_time() - started}


def train(run_seed):
    return ["train", "--data-dir", letters, "--hidden", "16", "--epochs", "2",
            "--batch-size", "16", "--seed", str(run_seed), "--out", str(out)]


def temp_files():
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def check(result, before, run_seed):
    problems = []
    if result["escaped"] or result["code"] not in (0, 130):
        problems.append(f"ended with {result['escaped'] or result['code']}")
    text = result["stdout"] + result["stderr"]
    if "Traceback" in text:
        problems.append("traceback")
    lines = [line for line in result["stderr"].splitlines()
             if line.strip() and not line.startswith("Model: ")]  # which model answered
    if result["code"] == 130 and (len(lines) != 1 or not lines[0].startswith("Error:")):
        problems.append(f"not one error line: {lines}")
    if result["code"] == 0 and lines:
        problems.append(f"stderr on success: {lines}")
    if temp_files():
        problems.append(f"temp files left: {temp_files()}")
    try:
        checkpoint = load_checkpoint(out)
        load_model(out)
    except Exception as error:
        return problems + [f"--out does not load: {error}"]
    epochs = [line for line in result["stdout"].splitlines() if line.startswith("epoch ")]
    written = out.read_bytes() != before
    if written:
        if checkpoint["config"]["seed"] != run_seed or checkpoint["metrics"]["best_epoch"] < 1:
            problems.append("--out holds neither the previous model nor this run's")
        if not backup.exists() or backup.read_bytes() != before:
            problems.append("the previous model was lost")
    elif epochs:
        problems.append("an epoch finished but its model is not at --out")
    result["outcome"] = "saved" if written else "untouched"
    return problems


folder.mkdir(parents=True, exist_ok=True)
for _ in range(2):  # uninterrupted: first every lazy import, then the CPU time of a run
    calibration = attempt(train(0), None)
    assert calibration["code"] == 0, calibration
    test_calibration = attempt(["test", "--model", str(out), "--json"], None)
    assert test_calibration["code"] == 0, test_calibration
rng = random.Random(seed)
for index in range(count):
    run_seed = 1000 + index
    testing = index % 4 == 3  # every fourth instant interrupts `charrec test` instead
    before = out.read_bytes()
    if testing:
        argv, cpu = ["test", "--model", str(out), "--json"], test_calibration["cpu"]
    else:
        argv, cpu = train(run_seed), calibration["cpu"]
    result = attempt(argv, max(0.0005, rng.random() * cpu * 1.05))
    problems = check(result, before, run_seed) if not testing else []
    if testing:
        if temp_files():
            problems.append(f"temp files left: {temp_files()}")
        lines = [line for line in result["stderr"].splitlines()
                 if line.strip() and not line.startswith("Model: ")]  # which model answered
        if result["escaped"] or result["code"] not in (0, 130) or "Traceback" in result["stderr"]:
            problems.append(f"test ended badly: {result['escaped'] or result['stderr']}")
        elif result["code"] == 130 and len(lines) != 1:
            problems.append(f"not one error line: {lines}")
        if out.read_bytes() != before:
            problems.append("charrec test changed the model")
        result["outcome"] = "test"
    print(json.dumps({"index": index, "command": argv[0], "delay": result["delay"],
                      "code": result["code"], "fired": result["fired"],
                      "outcome": result["outcome"], "problems": problems}), flush=True)
'''


def run_harness(letters: Path, folder: Path, count: int, seed: int) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, "-c", HARNESS, str(letters), str(folder), str(count), str(seed)],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "COLUMNS": "200"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines()]


def check_harness(records: list[dict], count: int) -> None:
    assert len(records) == count
    failures = [record for record in records if record["problems"]]
    assert not failures, failures[:5]
    fired = [record for record in records if record["fired"]]
    assert len(fired) >= count // 2  # most instants fell inside a run
    assert {record["code"] for record in fired} >= {130}
    outcomes = {record["outcome"] for record in fired if record["command"] == "train"}
    assert outcomes == {"saved", "untouched"}, outcomes  # before and after the first epoch
    tally: dict[str, int] = {}
    for record in fired:
        key = f"{record['command']} exit {record['code']} ({record['outcome']})"
        tally[key] = tally.get(key, 0) + 1
    print(f"{len(records)} instants, {len(fired)} inside a run: {tally}")  # shown with -rP


def test_ctrl_c_at_many_cpu_instants_of_train_and_test_in_process(letters, tmp_path):
    check_harness(run_harness(letters, tmp_path, INPROCESS_FEW, seed=7), INPROCESS_FEW)


@pytest.mark.slow
def test_ctrl_c_at_hundreds_of_cpu_instants_of_train_and_test_in_process(letters, tmp_path):
    check_harness(run_harness(letters, tmp_path, INPROCESS_MANY, seed=8), INPROCESS_MANY)
