"""Fine-tuning the bundled model on a user's letters: `charrec train --from bundled`, measured.

    python benchmarks/finetune.py [--realdev DIR] [--scenario one|many|both] [--folds N]
                                  [-- extra charrec train options]

Makes the splits in a temporary folder (symlinks into --realdev, nothing copied into the
repository), runs the CLI exactly as a user would (`charrec train --from bundled --data-dir
PART`, no other option unless given after `--`), and prints, per fold, the accuracy of the
bundled and of the tuned model on the held-out letters and on the Chars74K photos, and the wall
time of the whole command:

- one: 10 images per letter of handwriting_dev (samples n with n % 3 == fold) to tune on, the
  other 20 per letter to test. The issue's target 1 is one writer; these are many writers, which
  is harder.
- many: 20 per letter (n % 3 != fold) to tune on, the other 10 to test (target 2, tuning on all
  780: other writers' capitals >= 96% while the photos stay >= 93%).

For this feature tuning on part of realdev and measuring on the rest is allowed (issue 25); the
bundled model itself never sees them. Figures: docs/finetune.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALDEV = REPO.parent / "shared" / "realdev"
# scenario -> (folds, whether a fold's own samples are the tuning part, description)
SCENARIOS = {"one": (3, True, "10/letter vs the other 20/letter"),
             "many": (3, False, "20/letter vs the other 10/letter")}


def sample_number(path: Path) -> int:
    """CAP_A_17.png -> 17: the sample index within its letter."""
    return int(path.stem.rsplit("_", 1)[-1])


def make_split(handwriting: Path, out: Path, folds: int, fold: int, own: bool
               ) -> tuple[Path, Path]:
    """Symlink handwriting's images into out/tune/<L>/ (the samples with sample % folds == fold
    if `own`, else the others) and out/test/<L>/ (the rest)."""
    tune, test = out / "tune", out / "test"
    for letter_dir in sorted(path for path in handwriting.iterdir() if path.is_dir()):
        for part in (tune, test):
            (part / letter_dir.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(letter_dir.iterdir()):
            part = tune if (sample_number(image) % folds == fold) == own else test
            (part / letter_dir.name / image.name).symlink_to(image.resolve())
    return tune, test


def accuracy(model_path: str, folder: Path) -> float:
    from charrec.checkpoint import load_model
    from charrec.data.loading import load_split
    from charrec.models.resolve import resolve_model
    from charrec.train import evaluate

    model, config, _ = load_model(resolve_model(model_path).path)
    data = load_split(folder, "test", config.norm_size, whole_folder=True)
    return evaluate(model, data.images, data.labels)["accuracy"]


def tune(data_dir: Path, out: Path, extra: list[str]) -> float:
    """Run `charrec train --from bundled` as a user would -> its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charrec", "train", "--from", "bundled", "--data-dir",
                    str(data_dir), "--out", str(out), *extra], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    parser.add_argument("--scenario", choices=("one", "many", "both"), default="both")
    parser.add_argument("--folds", type=int, help="run only the first N folds")
    parser.add_argument("extra", nargs="*", help="charrec train options (after --)")
    args = parser.parse_args()
    handwriting, photos = args.realdev / "handwriting_dev", args.realdev / "chars74k_val"
    if not handwriting.is_dir() or not photos.is_dir():
        sys.exit(f"{args.realdev}: needs handwriting_dev/ and chars74k_val/ (folder per letter)")
    sys.path.insert(0, str(REPO))
    scenarios = ("one", "many") if args.scenario == "both" else (args.scenario,)
    photos_before = accuracy("bundled", photos)
    print(f"charrec train --from bundled {' '.join(args.extra)}".strip())
    print(f"{'scenario':<10}{'fold':>5}{'held-out before':>17}{'after':>8}"
          f"{'photos before':>15}{'after':>8}{'wall s':>8}")
    with tempfile.TemporaryDirectory(prefix="charrec-finetune-") as temp:
        for scenario in scenarios:
            folds, own, description = SCENARIOS[scenario]
            rows = []
            for fold in range(min(folds, args.folds or folds)):
                root = Path(temp) / f"{scenario}-{fold}"
                tune_dir, test_dir = make_split(handwriting, root, folds, fold, own)
                out = root / "tuned.pth"
                seconds = tune(tune_dir, out, args.extra)
                row = (accuracy("bundled", test_dir), accuracy(str(out), test_dir),
                       photos_before, accuracy(str(out), photos), seconds)
                rows.append(row)
                print(f"{scenario:<10}{fold:>5}{100 * row[0]:>16.1f}%{100 * row[1]:>7.1f}%"
                      f"{100 * row[2]:>14.1f}%{100 * row[3]:>7.1f}%{row[4]:>8.1f}", flush=True)
            means = [sum(values) / len(values) for values in zip(*rows, strict=True)]
            print(f"{scenario:<10}{'mean':>5}{100 * means[0]:>16.1f}%{100 * means[1]:>7.1f}%"
                  f"{100 * means[2]:>14.1f}%{100 * means[3]:>7.1f}%{means[4]:>8.1f}")
            print(f"  ({description} of handwriting_dev's many writers)")


if __name__ == "__main__":
    main()
