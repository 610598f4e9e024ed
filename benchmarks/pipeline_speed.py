"""`charrec train` end to end against a plain-PyTorch script doing the same job.

    python benchmarks/pipeline_speed.py [--rounds 3] [--epochs 50] [--per-class 175]

The job (the course's MLP): 1024-64-26, SGD lr 0.01 momentum 0.9, batch 64, no augmentation,
validation every epoch, the best epoch's weights saved, on built-in letters rendered once into
a temporary folder (`--per-class` x 26 images, 80/10/10). Contenders, each a fresh process
(imports, decoding and saving included), run alternately (A B, then B A, ...):
  - `charrec train ...` (one torch thread, its default), and
  - `benchmarks/plain_pytorch.py` (nn.Linear + F.cross_entropy, ~40 lines, one thread).
Printed: the median wall time of each, their ratio charrec / plain (target <= 1.05), the
median of each round's ratio (its two runs were back to back), the ratio of the processes' CPU
time (user + system; least disturbed by other work on a shared machine), and each run's best
validation accuracy (both should learn alike).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process: user + system, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--per-class", type=int, default=175)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="charrec-pipeline-") as temp:
        data = Path(temp) / "letters"
        subprocess.run([sys.executable, "-m", "charrec", "data", "synth", "--out", str(data),
                        "--per-class", str(args.per_class)], check=True, capture_output=True)
        charrec = [sys.executable, "-m", "charrec", "train", "--data-dir", str(data),
                   "--hidden", "64", "--optim", "sgd", "--lr", "0.01", "--momentum", "0.9",
                   "--epochs", str(args.epochs), "--no-augment", "--out",
                   str(Path(temp) / "charrec.pth")]
        plain = [sys.executable, str(HERE / "plain_pytorch.py"), str(data),
                 str(Path(temp) / "plain.pth"), "--epochs", str(args.epochs)]
        seconds: dict[str, list[float]] = {"charrec": [], "plain": []}
        cpu: dict[str, list[float]] = {"charrec": [], "plain": []}
        accuracy: dict[str, float] = {}
        for round_index in range(args.rounds):
            order = ["charrec", "plain"] if round_index % 2 == 0 else ["plain", "charrec"]
            for name in order:
                wall, cpu_seconds, output = timed(charrec if name == "charrec" else plain)
                seconds[name].append(wall)
                cpu[name].append(cpu_seconds)
                if name == "plain":
                    accuracy[name] = json.loads(output)["best_val_accuracy"]
            from charrec.checkpoint import load_checkpoint

            accuracy["charrec"] = load_checkpoint(Path(temp) / "charrec.pth")["metrics"][
                "best_val_accuracy"]
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    for name, values in seconds.items():
        print(f"{name:8s} median {medians[name]:.2f} s  (runs: "
              f"{', '.join(f'{value:.2f}' for value in values)})  CPU median "
              f"{cpu_medians[name]:.2f} s  best val acc {accuracy[name]:.3f}")
    paired = [ours / theirs for ours, theirs in zip(seconds["charrec"], seconds["plain"],
                                                    strict=True)]
    print(f"ratio charrec / plain: {medians['charrec'] / medians['plain']:.3f}  "
          f"(median of the rounds' ratios {statistics.median(paired):.3f}; CPU time "
          f"{cpu_medians['charrec'] / cpu_medians['plain']:.3f}; target <= 1.05; "
          f"{args.epochs} epochs, {args.per_class * 26} images)")


if __name__ == "__main__":
    main()
