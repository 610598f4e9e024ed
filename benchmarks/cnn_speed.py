"""Training speed: charrec's hand-written-autograd CNN against the same CNN from torch's layers.

    python benchmarks/cnn_speed.py [--conv 3x3x16,3x3x32,3x3x64,3x3x128] [--images 2048]
                                   [--batch-size 64] [--rounds 7] [--threads N] [--json]

Side by side in one process on the same in-memory data (random 32x32 images, 26 classes), the
same batch size, the same initial weights, the same optimizer (Adam) and the same shuffled order:
seconds per training epoch of
  - charrec: `charrec.nn.model.CNN` (our Conv2d / MaxPool2d / Flatten / Linear Functions) +
    `charrec.nn.functions.softmax_cross_entropy`, and
  - torch:   its twin from `charrec.tools.gradcheck.builtin_equivalent` (nn.Conv2d, nn.MaxPool2d,
    nn.Linear, ...) + `F.cross_entropy`.
After a warm-up epoch each, the two are timed alternately (A B, then B A, ...) for several rounds,
so a busy machine slows both alike. Printed: the median epoch time of each and the ratio
charrec / torch (target <= 1.11, i.e. >= 0.9x torch's speed), the same ratio of the fastest
epochs and of the training thread's CPU time (least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from side_by_side import Trainer

from charrec.config import make_config
from charrec.nn import functions
from charrec.nn.model import build_model
from charrec.tools.gradcheck import builtin_equivalent

N_CLASSES, SIZE = 26, 32


def make_data(n_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n_images, SIZE, SIZE, generator=generator) * 2 - 1
    labels = torch.randint(0, N_CLASSES, (n_images,), generator=generator)
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conv", default="3x3x16,3x3x32,3x3x64,3x3x128")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = make_config({"arch": "cnn", "conv": args.conv, "norm_size": f"{SIZE},{SIZE}"})
    torch.manual_seed(0)
    ours = build_model(config, N_CLASSES)
    twin = builtin_equivalent(ours)
    images, labels = make_data(args.images, seed=1)
    trainers = {
        "charrec": Trainer(ours, functions.softmax_cross_entropy, images, labels,
                           args.batch_size),
        "torch": Trainer(twin, F.cross_entropy, images, labels, args.batch_size),
    }
    generator = torch.Generator().manual_seed(2)
    for trainer in trainers.values():  # warm-up
        trainer.epoch(torch.randperm(args.images, generator=generator))
    times: dict[str, list[float]] = {name: [] for name in trainers}
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    for round_index in range(args.rounds):
        order = torch.randperm(args.images, generator=generator)
        names = list(trainers) if round_index % 2 == 0 else list(trainers)[::-1]
        for name in names:
            times[name].append(trainers[name].epoch(order))
            cpu[name].append(trainers[name].cpu_seconds)

    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "conv": args.conv, "images": args.images, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "rounds": args.rounds,
        "seconds_per_epoch": {name: round(value, 4) for name, value in medians.items()},
        "samples_per_second": {name: round(args.images / value, 1)
                               for name, value in medians.items()},
        "ratio_median": round(medians["charrec"] / medians["torch"], 3),
        "ratio_fastest": round(min(times["charrec"]) / min(times["torch"]), 3),
        # CPU seconds of the training thread: the work itself (exact with --threads 1)
        "ratio_cpu": round(statistics.median(cpu["charrec"]) / statistics.median(cpu["torch"]),
                           3),
        "all_seconds": {name: [round(value, 4) for value in values]
                        for name, values in times.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"CNN {args.conv} on {args.images} images 32x32, batch {args.batch_size}, "
          f"{result['threads']} thread(s), {args.rounds} alternating rounds")
    for name in trainers:
        print(f"  {name:8s} median {medians[name]:.3f} s/epoch  "
              f"({result['samples_per_second'][name]:.0f} samples/s)")
    print(f"  time ratio charrec / torch: median epochs {result['ratio_median']:.2f}, "
          f"fastest epochs {result['ratio_fastest']:.2f}, CPU time {result['ratio_cpu']:.2f}  "
          f"(target <= 1.11: at least 0.9x torch's speed)")


if __name__ == "__main__":
    main()
