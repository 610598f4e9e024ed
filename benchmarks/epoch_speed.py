"""One training epoch of the default MLP on the built-in letters' scale: batches augmented in turn
vs one batch ahead in a helper thread (`charrec.data.batches`), with one or two torch threads.

    python benchmarks/epoch_speed.py [--rounds 4] [--images 20800]

Each contender trains the same freshly seeded default model (1024-256-26, Adam, batch 64) for
one epoch on the same random images with augmentation, as `charrec.train.train_epoch` does;
the contenders run alternately, each round in a rotated order, and the medians of their wall
times are printed with the ratio to the default (one torch thread, augmented one ahead). Also
checked: every contender ends with the same weights (they must: same batches, same draws).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from charrec.config import make_config
from charrec.data.augment import augment_batch
from charrec.nn.model import logits_and_loss
from charrec.train import build_training, train_epoch


def in_turn_epoch(model, optimizer, images, labels, generators) -> None:
    """The loop before batches were augmented ahead: augment, then train, batch after batch."""
    shuffle, augment_generator = generators
    order = torch.randperm(len(images), generator=shuffle)
    for start in range(0, len(images), 64):
        index = order[start:start + 64]
        optimizer.zero_grad(set_to_none=True)
        _, loss = logits_and_loss(model, augment_batch(images[index], augment_generator),
                                  labels[index], "ce")
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--images", type=int, default=20800)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.images, 32, 32, generator=generator) * 2 - 1
    labels = torch.randint(0, 26, (args.images,), generator=generator)
    config = make_config({"augment": True, "device": "cpu"})

    def run(ahead: bool, threads: int) -> tuple[float, torch.Tensor]:
        torch.set_num_threads(threads)
        model, optimizer = build_training(config)
        generators = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
        started = time.perf_counter()
        if ahead:
            train_epoch(model, optimizer, "ce", images, labels, 64, generators, augment_batch)
        else:
            in_turn_epoch(model, optimizer, images, labels, generators)
        seconds = time.perf_counter() - started
        return seconds, torch.cat([tensor.flatten() for tensor in model.state_dict().values()])

    contenders = {"one thread, augmented ahead (default)": (True, 1),
                  "one thread, augmented in turn": (False, 1),
                  "two threads, augmented ahead": (True, 2),
                  "two threads, augmented in turn": (False, 2)}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    weights = {}
    loads = [os.getloadavg()[0]]
    names = list(contenders)
    for round_index in range(args.rounds):
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            wall, weights[name] = run(*contenders[name])
            seconds[name].append(wall)
    loads.append(os.getloadavg()[0])
    default = statistics.median(seconds[names[0]])
    for name in names:
        median = statistics.median(seconds[name])
        print(f"{name:40s} median {median:.2f} s  (runs: "
              f"{', '.join(f'{value:.2f}' for value in seconds[name])})  "
              f"time / default {median / default:.3f}")
    same = all(torch.equal(weights[names[0]], weights[name]) for name in names)
    print(f"{args.images} images, batch 64, {args.rounds} rounds; load {loads[0]:.2f} -> "
          f"{loads[1]:.2f}; all contenders end with the same weights: {same}")


if __name__ == "__main__":
    main()
