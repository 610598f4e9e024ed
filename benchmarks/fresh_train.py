"""How long does a fresh `charrec train` take, end to end, and where does the time go?

    python benchmarks/fresh_train.py [--rounds 1] [--warm-font-cache] [--realdev DIR ...]
                                     [-- extra charrec train options]

Runs the README's first command the way a new user meets it: `charrec train` with every default
in an empty temporary folder, so it renders the 26,000 built-in letters, trains the default MLP
and tests it. Each round is a fresh process. By default charrec's per-user cache (the font
checks, `data.builtin.font_cache`) starts empty too, as on a fresh install; `--warm-font-cache`
measures a later run instead (the cache filled by a first, untimed lookup).

The child's output lines are time-stamped as they arrive (unbuffered), which splits the wall
time into phases: start-up (until "No dataset at ..."), rendering (until "Generated ..."),
reading the data (until "Data: ..."), building the model (until "Model: ..."), training (until
the last epoch line) and the rest (saving, testing, the curves, exit). Also printed: the CPU time
of the child and its render workers, the load average before and after (the machine may be
shared), and the rendering rate the manifest recorded.

With `--realdev DIR`, the trained model is then tested on each folder of real letters
(`charrec test`), to check that a faster run reads as well as before. Those letters are only
ever measured, never trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = (("start-up", re.compile(r"^No dataset at ")),
          ("rendering", re.compile(r"^Generated \d+ images")),
          ("reading data", re.compile(r"^Data: ")),
          ("building model", re.compile(r"^Model: ")))
EPOCH_LINE = re.compile(r"^epoch\s+\d+", re.IGNORECASE)


def charrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "charrec", *args]


def timed_run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float,
                                                                           list[tuple[float, str]]]:
    """(wall seconds, CPU seconds of the child and its descendants, [(seconds, line)])."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=cwd) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.rstrip()))
    wall = time.perf_counter() - started
    if process.returncode:
        sys.exit("charrec train failed:\n" + "\n".join(line for _, line in lines[-20:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, lines


def phases(wall: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per phase, from the time stamps of the lines that end each phase."""
    ends: dict[str, float] = {}
    for name, pattern in PHASES:
        ends[name] = next((stamp for stamp, line in lines if pattern.search(line)), float("nan"))
    epoch_stamps = [stamp for stamp, line in lines if EPOCH_LINE.search(line)]
    ends["training"] = epoch_stamps[-1] if epoch_stamps else float("nan")
    ends["saving, testing, exit"] = wall
    result, previous = {}, 0.0
    for name, end in ends.items():
        result[name] = end - previous
        previous = end
    return result


def accuracy_on(model: Path, folder: Path, env: dict[str, str], cwd: Path) -> str:
    completed = subprocess.run(charrec("test", "--model", str(model), "--data-dir", str(folder),
                                       "--json"),
                               capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if completed.returncode:
        return f"charrec test failed: {completed.stderr.strip().splitlines()[-1:]}"
    report = json.loads(completed.stdout)
    return f"{100 * report['accuracy']:.1f}% ({report['n_correct']}/{report['n_images']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm-font-cache", action="store_true",
                        help="time a later run: the font checks already cached")
    parser.add_argument("--realdev", type=Path, nargs="*", default=[],
                        help="folders of real letters to test each trained model on")
    parser.add_argument("extra", nargs="*", help="more `charrec train` options (after --)")
    args = parser.parse_args()

    walls, cpus = [], []
    for round_index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="charrec-fresh-train-") as temp:
            folder = Path(temp)
            env = {**os.environ, "PYTHONUNBUFFERED": "1",
                   "CHARREC_CACHE_DIR": str(folder / "cache")}
            if args.warm_font_cache:
                subprocess.run([sys.executable, "-c", "from charrec.data.builtin.fonts import "
                                "find_font_faces; find_font_faces()"], env=env, check=True)
            load_before = os.getloadavg()[0]
            wall, cpu, lines = timed_run(charrec("train", *args.extra), env, folder)
            load_after = os.getloadavg()[0]
            walls.append(wall)
            cpus.append(cpu)
            data_dir = folder / "data" / "character_classification"  # charrec's default
            manifest = json.loads((data_dir / "manifest.json").read_text())
            split = "  ".join(f"{name} {seconds:.1f} s" for name, seconds in
                              phases(wall, lines).items())
            print(f"round {round_index + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU (with the "
                  f"render workers); load {load_before:.2f} -> {load_after:.2f}")
            print(f"  phases: {split}")
            print(f"  rendering: {manifest['images_per_second']:,.0f} images/s with "
                  f"{manifest['workers']} workers ({manifest['render_seconds']:.1f} s for "
                  f"{sum(manifest['counts'].values()):,} images, font checks "
                  f"{'cached' if args.warm_font_cache else 'not cached'})")
            final = [line for _, line in lines if "test accuracy" in line.lower()]
            if final:
                print(f"  {final[-1].strip()}")
            for real in [folder.resolve() for folder in args.realdev]:
                model = folder / "saved_models" / "recognition.pth"
                print(f"  {real.name}: {accuracy_on(model, real, env, folder)}", flush=True)
    if args.rounds > 1:
        print(f"median of {args.rounds} rounds: {statistics.median(walls):.1f} s wall, "
              f"{statistics.median(cpus):.1f} s CPU (target: 60 s wall on 2 cores)")


if __name__ == "__main__":
    main()
