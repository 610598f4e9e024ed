"""How fast are the built-in letters generated, decoded and augmented? Prints images/s, ms/batch.

    python benchmarks/synth_speed.py [--per-class N] [--workers W] [--fonts DIR ...]

Renders into a temporary folder (deleted afterwards) with the same call `charrec data synth` and
`charrec train` use, at the default size unless told otherwise, and prints images/s of wall time
and the load average (the machine is shared: other jobs' load slows the wall time, so it also
prints images per CPU-second of one process rendering a slice of the same images, which other
jobs disturb less). Then it times decoding the images as `charrec train` does, and
`augment_batch` on a 64x32x32 batch against one training step of the default model on the same
batch, with one torch thread as training uses.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from charrec.data.builtin import fonts, synth
from charrec.data.builtin.fonts import find_font_faces
from charrec.data.loading import load_splits


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
        load = os.getloadavg()[0]
        started = time.perf_counter()
        manifest = synth.generate_dataset(Path(temp) / "letters", per_class=args.per_class,
                                          font_dirs=args.fonts, workers=args.workers)
        total_seconds = time.perf_counter() - started
        size = sum(path.stat().st_size for path in (Path(temp) / "letters").rglob("*"))
        images = sum(manifest["counts"].values())
        print(f"generated {images} images ({args.per_class} per class) with "
              f"{manifest['workers']} workers on {os.cpu_count()} CPUs (load {load:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after): {manifest['images_per_second']:.0f} images/s "
              f"while rendering ({manifest['render_seconds']:.1f} s), "
              f"{images / total_seconds:.0f} images/s overall ({total_seconds:.1f} s), "
              f"{size / 2**20:.0f} MiB on disk")
        started, cpu_started = time.perf_counter(), time.process_time()
        load_splits(Path(temp) / "letters", (32, 32))
        print(f"decoding them as `charrec train` does: {time.perf_counter() - started:.1f} s "
              f"({time.process_time() - cpu_started:.1f} s CPU)")
    time_one_process(faces, min(images, 5000))
    time_augmentation()


def time_one_process(faces, count: int) -> None:
    """Images per CPU-second of this process rendering the first `count` images, chunk by chunk
    as a worker does (fonts loaded and glyphs rasterised on first use, files written)."""
    fonts.use_faces(faces)
    with tempfile.TemporaryDirectory(prefix="charrec-synth-speed-") as temp:
        job = (temp, 0, (32, 32), 6)
        cpu_started = time.process_time()
        for start in range(0, count, synth.CHUNK_SIZE):
            synth._render_chunk(job, start, min(start + synth.CHUNK_SIZE, count))
        cpu = time.process_time() - cpu_started
    print(f"one process, {count} images: {count / cpu:.0f} images per CPU-second "
          f"({cpu / count * 1000:.2f} ms each; x2 = what 2 idle cores would render)")


def time_augmentation(repeats: int = 200) -> None:
    import torch

    from charrec.config import make_config
    from charrec.data.augment import augment_batch
    from charrec.nn.functions import loss_function
    from charrec.nn.model import build_model
    from charrec.train import make_optimizer

    torch.set_num_threads(1)  # as `charrec train` (--threads 1)
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
