"""How fast are the built-in letters generated? Prints font discovery time and images per second.

    python benchmarks/synth_speed.py [--per-class N] [--workers W] [--fonts DIR ...]

Renders into a temporary folder (deleted afterwards) with the same call `charrec data synth` and
`charrec train` use, at the default size unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from charrec import synth
from charrec.synth_fonts import find_font_faces


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


if __name__ == "__main__":
    main()
