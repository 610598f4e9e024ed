"""`charrec predict IMG` with the bundled model against `python -c "import torch"`.

    python benchmarks/predict_speed.py [--rounds 9]

Both are fresh processes, timed alternately (A B, then B A, ...) in one run; printed: the median
wall time of each and their ratio (target <= 1.2). The image is a letter drawn with Pillow in a
temporary folder with no `saved_models/`, so the bundled model answers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="charrec-predict-") as temp:
        folder = Path(temp)
        image = Image.new("L", (64, 64), 235)
        ImageDraw.Draw(image).text((32, 32), "K", fill=20, anchor="mm",
                                   font=ImageFont.load_default(size=48))
        image.save(folder / "k.png")
        contenders = {
            "charrec predict": [sys.executable, "-m", "charrec", "predict", "k.png"],
            "import torch": [sys.executable, "-c", "import torch"],
        }
        for command in contenders.values():  # warm the file cache
            timed(command, folder)
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        for round_index in range(args.rounds):
            names = list(contenders) if round_index % 2 == 0 else list(contenders)[::-1]
            for name in names:
                seconds[name].append(timed(contenders[name], folder))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name:16s} median {medians[name]:.3f} s  (fastest {min(values):.3f} s)")
    print(f"ratio charrec predict / import torch: "
          f"{medians['charrec predict'] / medians['import torch']:.3f} median, "
          f"{min(seconds['charrec predict']) / min(seconds['import torch']):.3f} fastest "
          f"(target <= 1.2; {args.rounds} rounds)")


if __name__ == "__main__":
    main()
