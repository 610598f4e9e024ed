"""`charrec train` end to end against a plain-PyTorch script doing the same job.

    python benchmarks/pipeline_speed.py [--rounds 3] [--epochs 50] [--per-class 175]

The job (the course's MLP): 1024-64-26, SGD lr 0.01 momentum 0.9, batch 64, no augmentation,
validation every epoch, the best epoch's weights saved, on built-in letters rendered once into
a temporary folder (`--per-class` x 26 images, 80/10/10). Contenders, each a fresh process
(imports, decoding and saving included), run alternately (A B, then B A, ...):
  - `charrec train ...` (one torch thread, its default), and
  - `benchmarks/plain_pytorch.py` (nn.Linear + F.cross_entropy, ~40 lines, one thread).
Printed: the median wall time of each, their ratio charrec / plain (target <= 1.05), and each
run's best validation accuracy (both should learn alike).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


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
        accuracy: dict[str, float] = {}
        for round_index in range(args.rounds):
            order = ["charrec", "plain"] if round_index % 2 == 0 else ["plain", "charrec"]
            for name in order:
                wall, output = timed(charrec if name == "charrec" else plain)
                seconds[name].append(wall)
                if name == "plain":
                    accuracy[name] = json.loads(output)["best_val_accuracy"]
            from charrec.checkpoint import load_checkpoint

            accuracy["charrec"] = load_checkpoint(Path(temp) / "charrec.pth")["metrics"][
                "best_val_accuracy"]
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name:8s} median {medians[name]:.2f} s  (runs: "
              f"{', '.join(f'{value:.2f}' for value in values)})  best val acc "
              f"{accuracy[name]:.3f}")
    print(f"ratio charrec / plain: {medians['charrec'] / medians['plain']:.3f}  "
          f"(target <= 1.05; {args.epochs} epochs, {args.per_class * 26} images)")


if __name__ == "__main__":
    main()
