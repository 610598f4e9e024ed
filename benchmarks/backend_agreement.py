"""Do ONNX Runtime and torch read every real letter alike? (`--backend onnx` vs `--backend torch`)

    python benchmarks/backend_agreement.py [--model bundled] [--realdev ../shared/realdev]

Reads every image under `--realdev` (real photos and handwriting, folder per letter) with the
same model on both backends, through `charrec.reader` (what `charrec predict` uses), and
prints, per folder: the images whose top-1 letter differs, the largest difference of any
class's probability, the largest logit difference, and whether the target holds (same top-1
everywhere, probabilities within 1e-4). Exits 1 if it does not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from charrec.data.preprocess import IMAGE_SUFFIXES
from charrec.predict import softmax
from charrec.reader import load_reader

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev")
    args = parser.parse_args()
    readers = {backend: load_reader(args.model, backend) for backend in ("onnx", "torch")}
    print(f"model: {readers['onnx'].describe()} vs {readers['torch'].describe()}")
    from charrec.data.loading import decode_arrays

    worst_probability, disagreements, total = 0.0, 0, 0
    for folder in sorted(path for path in args.realdev.iterdir() if path.is_dir()):
        paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        images, ok, skipped = decode_arrays(paths, readers["onnx"].norm_size)
        logits = {name: reader.logits(images[:, np.newaxis]) for name, reader in readers.items()}
        probabilities = {name: softmax(values) for name, values in logits.items()}
        top = {name: values.argmax(axis=1) for name, values in probabilities.items()}
        differ = int((top["onnx"] != top["torch"]).sum())
        probability_gap = float(np.abs(probabilities["onnx"] - probabilities["torch"]).max())
        logit_gap = float(np.abs(logits["onnx"] - logits["torch"].astype(np.float64)).max())
        print(f"{folder.name}: {len(images)} images ({len(skipped)} unreadable); top-1 differs "
              f"on {differ}; largest probability difference {probability_gap:.2g}, largest "
              f"logit difference {logit_gap:.2g}")
        worst_probability = max(worst_probability, probability_gap)
        disagreements += differ
        total += len(images)
    holds = disagreements == 0 and worst_probability <= TOLERANCE
    print(f"all {total} images: top-1 differs on {disagreements}; largest probability difference "
          f"{worst_probability:.2g} (target: none, and <= {TOLERANCE:g}): "
          f"{'met' if holds else 'NOT met'}")
    if not holds:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
