"""Reading speed of a model against a baseline, per image, as `predict` and `test` read them.

    python benchmarks/bundled_speed.py [--model bundled]
                                       [--baseline main]   # a git revision's bundled model,
                                                           # or a checkpoint path
                                       [--backend torch|onnx] [--rounds 7] [--tta]
                                       [--images ../shared/realdev/chars74k_val]

In one process, one thread, alternating the two models round by round (A B, then B A, ...):
- `predict`: `Reader.predict_images` on about 260 image files (decoding, preprocessing, the
  network and the answer's checks, as `charrec predict` does after start-up);
- `test`: `charrec.measure.measure_data` on all images, decoded once beforehand (the network in
  batches, as `charrec test` does after reading the files);
on the `--backend` both models are read with (with `onnx`, a checkpoint's `.onnx` beside it,
as `benchmarks/bundled_model.py` writes);
and optionally the same with `--tta`. Prints the median seconds per image of each and the
ratio model / baseline (target: <= 1, "no slower per image").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from charrec.measure import measure_data, test_images
from charrec.reader import load_reader

REPO = Path(__file__).resolve().parents[1]


def baseline_path(spec: str, folder: Path) -> Path:
    """A checkpoint path as given, or the bundled model (and its ONNX form, if it has one) of
    git revision `spec`."""
    if Path(spec).is_file():
        return Path(spec)
    for suffix in (".pth", ".onnx"):
        blob = subprocess.run(["git", "show", f"{spec}:charrec/models/bundled{suffix}"],
                              cwd=REPO, capture_output=True).stdout
        if blob:
            (folder / f"baseline{suffix}").write_bytes(blob)
    return folder / "baseline.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled", help="bundled, a checkpoint or a .onnx")
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--images", type=Path,
                        default=REPO.parent / "shared" / "realdev" / "chars74k_val")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tta", action="store_true", help="also time both with --tta")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temp:
        baseline = baseline_path(args.baseline, Path(temp))
        if args.backend == "onnx":
            baseline = baseline.with_suffix(".onnx")
        models = {"model": load_reader(args.model, args.backend),
                  "baseline": load_reader(baseline, args.backend)}
        data, name = test_images(models["model"].config, args.images, "test")
        paths = [Path(path) for path in data.paths[::max(1, len(data.paths) // 200)]]
        modes = [False, True] if args.tta else [False]
        times: dict[tuple[str, str, bool], list[float]] = {}
        for round_number in range(args.rounds):
            order = list(models) if round_number % 2 == 0 else list(reversed(models))
            for label in order:
                reader = models[label]
                for tta in modes:
                    started = time.perf_counter()
                    reader.predict_images(paths, tta=tta)
                    times.setdefault((label, "predict", tta), []).append(
                        (time.perf_counter() - started) / len(paths))
                    started = time.perf_counter()
                    measure_data(reader, data, name, tta)
                    times.setdefault((label, "test", tta), []).append(
                        (time.perf_counter() - started) / len(data))
    print(f"{args.rounds} rounds, {len(paths)} images for predict, {len(data)} for test "
          f"({name}), backend {args.backend}; median ms per image")
    for command in ("predict", "test"):
        for tta in modes:
            model = statistics.median(times[("model", command, tta)]) * 1e3
            baseline = statistics.median(times[("baseline", command, False)]) * 1e3
            flag = " --tta" if tta else ""
            print(f"{command}{flag}: model {model:.3f} ms, baseline (no --tta) {baseline:.3f} ms,"
                  f" ratio {model / baseline:.2f}")


if __name__ == "__main__":
    main()
