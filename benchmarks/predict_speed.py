"""`charrec predict` with the bundled model against `python -c "import torch"`: one image and a
folder of small real images, wall time and peak memory.

    python benchmarks/predict_speed.py [--rounds 7] [--folder ../shared/realdev]

Contenders, each a fresh process, timed in turn and in alternating order (forwards, then
backwards, ...) in one run:

    one image         charrec predict k.png                  (bundled model, ONNX Runtime)
    one image, torch  charrec predict k.png --backend torch  (the same model on torch)
    folder            charrec predict FOLDER                 (every image inside, ONNX Runtime)
    import torch      python -c "import torch"

Printed: the median wall time, CPU time (user + system, which other jobs on a busy machine
disturb less) and peak resident memory (max RSS) of each, and the ratios of the medians to
`import torch` against the targets (one image <= 0.25 and <= 120 MB, folder <= 1.2).
The image is a letter drawn with Pillow in a temporary folder with no `saved_models/`, so the
bundled model answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"one image": 0.25, "folder": 1.2}
MAX_RSS_MB = 120


def timed(command: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds: user + system) of one run of `command`."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {error}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # RSS in kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--folder", type=Path, default=REPO.parent / "shared" / "realdev")
    args = parser.parse_args()
    charrec = [sys.executable, "-m", "charrec", "predict"]
    with tempfile.TemporaryDirectory(prefix="charrec-predict-") as temp:
        folder = Path(temp)
        image = Image.new("L", (64, 64), 235)
        ImageDraw.Draw(image).text((32, 32), "K", fill=20, anchor="mm",
                                   font=ImageFont.load_default(size=48))
        image.save(folder / "k.png")
        contenders = {
            "one image": [*charrec, "k.png"],
            "one image, torch": [*charrec, "k.png", "--backend", "torch"],
            "folder": [*charrec, str(args.folder.resolve())],
            "import torch": [sys.executable, "-c", "import torch"],
        }
        for command in contenders.values():  # warm the file cache
            timed(command, folder)
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
        for round_index in range(args.rounds):
            names = list(contenders) if round_index % 2 == 0 else list(contenders)[::-1]
            for name in names:
                runs[name].append(timed(contenders[name], folder))
    images = sum(1 for path in args.folder.rglob("*.png"))
    wall = {name: statistics.median(run[0] for run in values) for name, values in runs.items()}
    rss = {name: statistics.median(run[1] for run in values) for name, values in runs.items()}
    cpu = {name: statistics.median(run[2] for run in values) for name, values in runs.items()}
    for name in contenders:
        fastest = min(run[0] for run in runs[name])
        print(f"{name:18s} median {wall[name]:.3f} s (fastest {fastest:.3f} s), CPU "
              f"{cpu[name]:.3f} s, peak RSS {rss[name]:.0f} MB")
    torch_time = wall["import torch"]
    for name in contenders:
        if name == "import torch":
            continue
        ratio, target = wall[name] / torch_time, TARGETS.get(name)
        verdict = (f" (target <= {target}: {'met' if ratio <= target else 'NOT met'})"
                   if target else "")
        print(f"ratio {name} / import torch: {ratio:.3f}{verdict}; CPU time ratio "
              f"{cpu[name] / cpu['import torch']:.3f}")
    print(f"one image peak RSS {rss['one image']:.0f} MB (target <= {MAX_RSS_MB}: "
          f"{'met' if rss['one image'] <= MAX_RSS_MB else 'NOT met'}); folder: {images} images "
          f"under {args.folder}; {args.rounds} rounds")


if __name__ == "__main__":
    main()
