"""How fast are the built-in letters generated and augmented? Prints images/s and ms per batch.

    python benchmarks/synth_speed.py [--per-class N] [--workers W] [--fonts DIR ...]

Renders into a temporary folder (deleted afterwards) with the same call `charrec data synth` and
`charrec train` use, at the default size unless told otherwise. Then times `augment_batch` on a
64x32x32 batch against one training step of the default model on the same batch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from charrec.data import synth
from charrec.data.fonts import find_font_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=synth.DEFAULT_PER_CLASS)
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--fonts", type=Path, nargs="*", default=[])
    args = parser.parse_args()

    started = time.perf_counter()
    faces = find_font_faces(args.fonts)
    discovery = time.perf_counter() - started
    print(f"fonts: {len(faces)} faces in {len({face.family for face in faces})} families, "
          f"found and checked in {discovery:.1f} s")
    with tempfile.TemporaryDirectory(prefix="charrec-synth-speed-") as temp:
        started = time.perf_counter()
        manifest = synth.generate_dataset(Path(temp) / "letters", per_class=args.per_class,
                                          font_dirs=args.fonts, workers=args.workers)
        total_seconds = time.perf_counter() - started
        size = sum(path.stat().st_size for path in (Path(temp) / "letters").rglob("*"))
    images = sum(manifest["counts"].values())
    print(f"generated {images} images ({args.per_class} per class) with "
          f"{manifest['workers']} workers on {os.cpu_count()} CPUs: "
          f"{manifest['images_per_second']:.0f} images/s while rendering "
          f"({manifest['render_seconds']:.1f} s), {images / total_seconds:.0f} images/s "
          f"overall ({total_seconds:.1f} s), {size / 2**20:.0f} MiB on disk")
    time_augmentation()


def time_augmentation(repeats: int = 200) -> None:
    import torch

    from charrec.config import make_config
    from charrec.data.augment import augment_batch
    from charrec.nn.functions import loss_function
    from charrec.nn.model import build_model
    from charrec.train import make_optimizer

    config = make_config({})
    model = build_model(config, 26)
    optimizer = make_optimizer(config, model.parameters())
    loss_fn = loss_function(config.loss)
    images = torch.rand(config.batch_size, *config.norm_size) * 2 - 1
    labels = torch.randint(0, 26, (config.batch_size,))
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def milliseconds(work) -> float:
        for _ in range(10):
            work()
        started = time.perf_counter()
        for _ in range(repeats):
            work()
        return (time.perf_counter() - started) / repeats * 1000

    augment_ms = milliseconds(lambda: augment_batch(images, generator))
    step_ms = milliseconds(step)
    print(f"augment_batch: {augment_ms:.2f} ms per {config.batch_size}x{config.norm_size[0]}x"
          f"{config.norm_size[1]} batch; default model training step: {step_ms:.2f} ms "
          f"(augmentation adds {augment_ms / step_ms:.0%}) with {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
