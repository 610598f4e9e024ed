"""Do ONNX Runtime and torch read every real letter alike? (`--backend onnx` vs `--backend torch`)

    python benchmarks/backend_agreement.py [--model bundled] [--realdev ../shared/realdev]

Reads every image under `--realdev` (real photos and handwriting, folder per letter) with the
same model on both backends, through `charrec.reader` (what `charrec predict` uses), and
prints, per folder: the images whose top-1 letter differs, the largest difference of any
class's probability, the largest logit difference, and whether the target holds (same top-1
everywhere, probabilities within 1e-4). It also checks that the preprocessing (numpy, shared
by both backends) gives, image for image, what the plain torch formula gives on the same
decoded pixels (largest difference; 0 means bit for bit). Exits 1 if either does not hold.
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


def torch_formula(gray: np.ndarray) -> np.ndarray:
    """The preprocessing's plain formula in torch (as charrec computed it before numpy): stretch
    to [0, 1], invert when the border ring's median is above the mean, map to [-1, 1]."""
    import torch

    values = torch.from_numpy(gray).to(torch.float32)
    low = values.amin(dim=(1, 2), keepdim=True)
    values = (values - low) / (values.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1.0)
    height, width = values.shape[1:]
    rows, cols = max(1, height // 8), max(1, width // 8)
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[rows:height - rows, cols:width - cols] = False
    invert = values[:, mask].median(dim=1).values > values.mean(dim=(1, 2))
    values = torch.where(invert.view(-1, 1, 1), 1.0 - values, values)
    return (values * 2.0 - 1.0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev")
    args = parser.parse_args()
    readers = {backend: load_reader(args.model, backend) for backend in ("onnx", "torch")}
    print(f"model: {readers['onnx'].describe()} vs {readers['torch'].describe()}")
    from charrec.data.loading import decode_arrays
    from charrec.data.preprocess import load_gray

    worst_probability, disagreements, total, worst_input = 0.0, 0, 0, 0.0
    for folder in sorted(path for path in args.realdev.iterdir() if path.is_dir()):
        paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        images, ok, skipped = decode_arrays(paths, readers["onnx"].norm_size)
        gray = np.stack([load_gray(path, readers["onnx"].norm_size)
                         for path, good in zip(paths, ok, strict=True) if good])
        input_gap = float(np.abs(images - torch_formula(gray)).max())
        worst_input = max(worst_input, input_gap)
        logits = {name: reader.logits(images[:, np.newaxis]) for name, reader in readers.items()}
        probabilities = {name: softmax(values) for name, values in logits.items()}
        top = {name: values.argmax(axis=1) for name, values in probabilities.items()}
        differ = int((top["onnx"] != top["torch"]).sum())
        probability_gap = float(np.abs(probabilities["onnx"] - probabilities["torch"]).max())
        logit_gap = float(np.abs(logits["onnx"] - logits["torch"].astype(np.float64)).max())
        print(f"{folder.name}: {len(images)} images ({len(skipped)} unreadable); top-1 differs "
              f"on {differ}; largest probability difference {probability_gap:.2g}, largest "
              f"logit difference {logit_gap:.2g}; preprocessing vs the torch formula: largest "
              f"difference {input_gap:.2g}")
        worst_probability = max(worst_probability, probability_gap)
        disagreements += differ
        total += len(images)
    holds = disagreements == 0 and worst_probability <= TOLERANCE
    print(f"all {total} images: top-1 differs on {disagreements}; largest probability difference "
          f"{worst_probability:.2g} (target: none, and <= {TOLERANCE:g}): "
          f"{'met' if holds else 'NOT met'}")
    print(f"preprocessing: numpy vs the torch formula, largest difference {worst_input:.2g} "
          f"(target <= 1e-6: {'met' if worst_input <= 1e-6 else 'NOT met'})")
    holds = holds and worst_input <= 1e-6
    if not holds:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
