"""Does `charrec sweep --jobs 2` beat `--jobs 1`, and what does a local Ray cost? Times the same
10-trial sweep with each executor.

    python benchmarks/sweep_speed.py [--data-dir DIR] [--epochs E] [--rounds R] [--single-thread]
                                     [--no-ray]

Each run is the real command (`python -m charrec sweep FILE --jobs N` in a subprocess, so
worker start-up and image decoding are counted as a user sees them), on the same data with the
same seeds. Rounds alternate the order (1 then 2, 2 then 1, ...) so that a change in the load of
a shared machine does not favour one side. Prints each time, the ratio jobs1 / jobs2, the load
average around each run, and whether all runs gave identical results (they should: same seeds).

`--jobs 1` gives its one trial all the cores' threads (cores // jobs). `--single-thread` also
times `--jobs 1 --threads 1`, which separates the gain of running trials in parallel from the
cost of one trial's threads competing for busy cores.

With ray installed (`charrec[ray]`; `--no-ray` skips it) the contenders include
`--executor ray --jobs 2` (a local Ray of 2 x threads CPUs, started and stopped by the command),
and the fixed cost of that Ray is timed on its own: starting it (with charrec's node check) and
shutting it down, with no trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "character_classification"

SWEEP = """\
name: speed
base:
  data_dir: {data_dir}
  optim: sgd
  momentum: 0.9
  hidden: 64
  batch_size: 64
  epochs: {epochs}
  augment: false
grid:
  lr: [0.003, 0.01, 0.03, 0.06, 0.1]
repeats: 2
"""


def run_sweep(config: Path, options: list[str], out_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charrec", "sweep", str(config), *options,
                    "--out-dir", str(out_dir), "--keep", "none"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def results(out_dir: Path) -> dict[str, tuple]:
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    return {row["trial"]: (row["status"], row.get("val_accuracy"), row.get("test_accuracy"))
            for row in rows}


RAY_OVERHEAD = """\
import json, time
started = time.perf_counter()
from charrec.sweep.ray_executor import RayExecutor
executor = RayExecutor(None, jobs=2)
executor.start()
ready = time.perf_counter()
executor.close()
print(json.dumps({"start": ready - started, "stop": time.perf_counter() - ready}))
"""


def ray_overhead() -> dict[str, float]:
    """Seconds to start a local Ray for --jobs 2 (import, ray.init, node probe) and to stop it."""
    output = subprocess.run([sys.executable, "-c", RAY_OVERHEAD], check=True, cwd=REPO,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def ray_installed() -> bool:
    return subprocess.run([sys.executable, "-c", "import ray"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="dataset (the built-in letters are generated there if missing)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs (orders alternate)")
    parser.add_argument("--single-thread", action="store_true",
                        help="also time --jobs 1 --threads 1")
    parser.add_argument("--no-ray", action="store_true",
                        help="skip the Ray contender (it runs when ray is installed)")
    args = parser.parse_args()
    if not args.data_dir.exists():
        subprocess.run([sys.executable, "-m", "charrec", "data", "synth", "--out",
                        str(args.data_dir)], check=True, cwd=REPO)
    contenders = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"]}
    if args.single_thread:
        contenders["--jobs 1 --threads 1"] = ["--jobs", "1", "--threads", "1"]
    with_ray = not args.no_ray and ray_installed()
    if with_ray:
        contenders["--executor ray --jobs 2"] = ["--executor", "ray", "--jobs", "2"]
    times: dict[str, list[float]] = {label: [] for label in contenders}
    outcomes = []
    print(f"{os.cpu_count()} cores; 10 trials of {args.epochs} epochs on {args.data_dir}")
    with tempfile.TemporaryDirectory() as temp:
        config = Path(temp) / "speed.yaml"
        config.write_text(SWEEP.format(data_dir=args.data_dir.resolve(), epochs=args.epochs))
        for round_index in range(args.rounds):
            order = list(contenders) if round_index % 2 == 0 else list(contenders)[::-1]
            for label in order:
                out_dir = Path(temp) / f"run-{round_index}-{len(outcomes)}"
                load_before = os.getloadavg()[0]
                seconds = run_sweep(config, contenders[label], out_dir)
                times[label].append(seconds)
                outcomes.append(results(out_dir))
                print(f"round {round_index + 1}: {label:<24} {seconds:7.1f} s "
                      f"(1-min load average {load_before:.1f} before, "
                      f"{os.getloadavg()[0]:.1f} after)", flush=True)
    medians = {label: statistics.median(values) for label, values in times.items()}
    print(f"median of {args.rounds} round(s): " +
          "   ".join(f"{label}: {seconds:.1f} s" for label, seconds in medians.items()))
    for label, seconds in medians.items():
        if label != "--jobs 2":
            print(f"speed-up of --jobs 2 over {label}: {seconds / medians['--jobs 2']:.2f}x")
    if with_ray:
        overheads = [ray_overhead() for _ in range(args.rounds)]
        print(f"local Ray for --jobs 2, no trials (median of {args.rounds}): start "
              f"{statistics.median(o['start'] for o in overheads):.1f} s, stop "
              f"{statistics.median(o['stop'] for o in overheads):.1f} s")
    same = all(outcome == outcomes[0] for outcome in outcomes)
    print(f"identical results in every run: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
