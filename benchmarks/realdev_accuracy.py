"""Real-letter accuracy of the default model: train on the built-in letters, test on real photos.

    python benchmarks/realdev_accuracy.py [--realdev DIR] [--model CKPT] [--data-dir DIR]

Without --model it runs `charrec train` with default options (the README's command, so the same
code path: the built-in letters are generated first if --data-dir has none), then measures the
saved model on every image of the folder-per-class tree --realdev (by default the evaluation-only
Chars74K photos in ../shared/realdev) and prints overall and per-class accuracy. Set
CHARREC_FONT_DIRS to pin the fonts used (e.g. to what a fresh install has).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALDEV = REPO.parent / "shared" / "realdev" / "chars74k_val"


def train_default_model(data_dir: Path, out: Path) -> float:
    """`charrec train` with default options; returns its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charrec", "train", "--data-dir", str(data_dir),
                    "--out", str(out)], check=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    parser.add_argument("--model", type=Path, help="checkpoint to measure (default: train one)")
    parser.add_argument("--data-dir", type=Path, help="built-in letters to train on "
                        "(default: a fresh temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not args.realdev.is_dir():
        sys.exit(f"{args.realdev}: no such folder; pass --realdev DIR (one sub-folder per letter)")

    from charrec.checkpoint import load_model
    from charrec.data.loading import load_split
    from charrec.train import evaluate

    with tempfile.TemporaryDirectory(prefix="charrec-realdev-") as temp:
        seconds = None
        model_path = args.model
        if model_path is None:
            model_path = Path(temp) / "default.pth"
            seconds = train_default_model(args.data_dir or Path(temp) / "letters", model_path)
        model, config, _ = load_model(model_path)
        real = load_split(args.realdev, "test", config.norm_size, whole_folder=True)
        result = evaluate(model, real.images, real.labels)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    confusion = result["confusion"]
    per_class = {letter: round(confusion[row, row].item() / max(confusion[row].sum().item(), 1), 3)
                 for row, letter in enumerate(letters) if confusion[row].sum() > 0}
    report = {"accuracy": round(result["accuracy"], 4), "images": len(real.labels),
              "per_class": per_class, "train_seconds": seconds and round(seconds, 1)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"real-letter accuracy on {args.realdev}: {report['accuracy']:.1%} "
          f"of {report['images']} images"
          + (f" (generate + train took {seconds:.0f} s)" if seconds else ""))
    print("per class: " + "  ".join(f"{letter} {value:.0%}" for letter, value in per_class.items()))


if __name__ == "__main__":
    main()
