"""Training speed: charrec's hand-written-autograd MLP against the same MLP from torch's layers.

    python benchmarks/train_speed.py [--hidden 256 64] [--processes 6] [--rounds 7]
                                     [--batch-size 64] [--threads N] [--control]
                                     [--step-rounds 5] [--train-epochs 50] [--json]

Part 1, side by side in one process on the same in-memory data (4096 random 32x32 images, 26
classes), the same batch size, the same initial weights, the same optimizer (Adam) and the same
shuffled order: samples/s of one training epoch of
  - charrec: `charrec.nn.model.MLP` with its softmax cross-entropy as `charrec.train` runs them
    (`charrec.nn.model.logits_and_loss`: the layers and the loss as one fused Function), and
  - torch:   `nn.Linear`/`nn.ReLU` + `F.cross_entropy`.
After a warm-up epoch each, the two are timed alternately (A B, then B A, ...) for several rounds,
so a busy machine slows both alike; per process: the medians and their ratio, the ratio of the
fastest epochs, of the training thread's CPU time (with --threads 1 the CPU time is the work),
and the median over rounds of each round's ratio (its two epochs ran back to back, so a load
that changes slowly cancels out), in wall and CPU time.

Part 1 runs in `--processes` fresh processes, half of them building charrec's contender first
and half torch's, and prints the median of the processes' ratios (target >= 0.98) with each
process's ratio. In one process, the order in which the two are built moves the ratio by up to
~6% (where their tensors land in memory): one process would measure that placement as much as
the code. `--control` runs torch's MLP against a copy of itself instead (an A/A run: the spread
that noise and placement alone give on this machine).

A step is charrec's training step (zero_grad, loss, backward, optimizer step), and the
process's objects after import are frozen out of the garbage collector, as the `charrec` CLI
does (`gc.freeze`).

Part 1b (`--step-rounds`): the same contenders alternated step by step, in a random order per
batch, each step's CPU time recorded (`interleaved`): the least disturbed by a machine whose
speed drifts between epochs.

Part 2: the wall time of a full `charrec.train.run` run (50 epochs of a 1024-64-26 MLP on 4096
32x32 images, validation every epoch), i.e. the library's real training loop.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from side_by_side import Trainer
from torch import nn

from charrec.config import make_config
from charrec.data.loading import LetterData
from charrec.nn import functions
from charrec.nn.model import MLP, logits_and_loss
from charrec.train import run

N_IMAGES, N_CLASSES, SIZE = 4096, 26, 32


def make_data(n_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n_images, SIZE, SIZE, generator=generator) * 2 - 1
    labels = torch.randint(0, N_CLASSES, (n_images,), generator=generator)
    return images, labels


def torch_layers(hidden: int) -> nn.Sequential:
    """The MLP 1024-hidden-26 from torch's own layers (weights to be copied in)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, hidden), nn.ReLU(),
                         nn.Linear(hidden, N_CLASSES))


def copy_weights(model: MLP, twin: nn.Sequential) -> nn.Sequential:
    """`twin` (from `torch_layers`) with a copy of `model`'s weights: the same network."""
    theirs = [module for module in twin if isinstance(module, nn.Linear)]
    with torch.no_grad():
        for mine, linear in zip(model.linears, theirs, strict=True):
            linear.weight.copy_(mine.weight)
            linear.bias.copy_(mine.bias)
    return twin


def torch_twin(model: MLP) -> nn.Sequential:
    """The same network from torch's own layers, with a copy of `model`'s weights."""
    return copy_weights(model, torch_layers(model.linears[0].out_features))


def contenders(hidden: int, batch_size: int, first: str = "charrec",
               control: bool = False) -> dict[str, Trainer]:
    """charrec's MLP 1024-hidden-26 and its torch twin (same initial weights), each with Adam on
    the same 4096 random images, built (and listed, so warmed up and given their optimizer state)
    in that order with `first` first: where each lands in memory moves its speed by a few
    percent (see `across_processes`). `control`: the "charrec" contender is a second torch
    twin (an A/A run)."""
    images, labels = make_data(N_IMAGES, seed=0)
    early = torch_layers(hidden) if first == "torch" else None  # allocated before charrec's
    torch.manual_seed(0)
    ours = MLP(SIZE * SIZE, N_CLASSES, (hidden,), act="relu")
    mine = torch_twin(ours) if control else ours  # (built before torch's unless it came first)
    twin = copy_weights(ours, early if early is not None else torch_layers(hidden))
    trainers = {
        "charrec": Trainer(mine, F.cross_entropy if control else functions.softmax_cross_entropy,
                           images, labels, batch_size, lr=2e-3, batch_loss=None if control else
                           lambda images, labels: logits_and_loss(ours, images, labels, "ce")[1]),
        "torch": Trainer(twin, F.cross_entropy, images, labels, batch_size, lr=2e-3),
    }
    return {name: trainers[name] for name in (first, *(set(trainers) - {first}))}


def compare(hidden: int, batch_size: int, rounds: int, first: str = "charrec",
            control: bool = False) -> dict[str, float]:
    """Part 1 in this process: the contenders (built with `first` first) alternated epoch by
    epoch for `rounds` rounds after one warm-up epoch each."""
    trainers = contenders(hidden, batch_size, first, control)
    generator = torch.Generator().manual_seed(1)
    for trainer in trainers.values():  # warm-up
        trainer.epoch(torch.randperm(N_IMAGES, generator=generator))
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    for round_index in range(rounds):
        order = torch.randperm(N_IMAGES, generator=generator)
        names = list(trainers) if round_index % 2 == 0 else list(reversed(trainers))
        for name in names:
            seconds[name].append(trainers[name].epoch(order))
            cpu[name].append(trainers[name].cpu_seconds)
    # each round's two epochs ran back to back: their ratio cancels slow changes in the load
    paired = [theirs / ours for ours, theirs in zip(seconds["charrec"], seconds["torch"],
                                                     strict=True)]
    paired_cpu = [theirs / ours for ours, theirs in zip(cpu["charrec"], cpu["torch"],
                                                         strict=True)]
    ours_rate = N_IMAGES / statistics.median(seconds["charrec"])
    torch_rate = N_IMAGES / statistics.median(seconds["torch"])
    return {"hidden": hidden, "batch_size": batch_size, "rounds": rounds, "first": first,
            "charrec_samples_per_s": round(ours_rate), "torch_samples_per_s": round(torch_rate),
            "ratio": round(ours_rate / torch_rate, 3),
            "paired_ratio": round(statistics.median(paired), 3),
            "paired_cpu_ratio": round(statistics.median(paired_cpu), 3),
            # the fastest epoch of each: the least disturbed by other work on a shared machine
            "best_epoch_ratio": round(min(seconds["torch"]) / min(seconds["charrec"]), 3),
            # CPU time of the training thread (one torch thread): what the work itself costs
            "cpu_ratio": round(statistics.median(cpu["torch"]) / statistics.median(cpu["charrec"]),
                               3)}


def across_processes(hidden: int, args: argparse.Namespace) -> dict:
    """Part 1 in `args.processes` fresh processes, one after another, half of them building
    charrec's contender first and half torch's: the median over processes of each one's ratio
    (so where the contenders happened to land in memory, which moves a ratio by up to ~6%,
    cancels out instead of favouring one of them)."""
    runs = []
    for index in range(args.processes):
        first = ("charrec", "torch")[index % 2]
        command = [sys.executable, __file__, "--worker", "--hidden", str(hidden),
                   "--rounds", str(args.rounds), "--batch-size", str(args.batch_size),
                   "--first", first]
        command += ["--threads", str(args.threads)] if args.threads else []
        command += ["--control"] if args.control else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(output))

    def median_of(key: str) -> float:
        return round(statistics.median(run[key] for run in runs), 3)

    return {"hidden": hidden, "batch_size": args.batch_size, "processes": args.processes,
            "rounds": args.rounds, "control": args.control,
            **{key: median_of(key) for key in ("ratio", "cpu_ratio", "paired_ratio",
                                               "paired_cpu_ratio", "best_epoch_ratio")},
            "ratios": {first: [run["ratio"] for run in runs if run["first"] == first]
                       for first in ("charrec", "torch")},
            "runs": runs}


def interleaved(hidden: int, batch_size: int, rounds: int) -> dict[str, float]:
    """Part 1b: the same two contenders, alternated step by step instead of epoch by epoch.

    Each round visits every batch of a shuffled epoch; for each batch both contenders take their
    training step on it, in a random order, and each step's CPU time is recorded. Neighbouring
    steps see the same machine, so a speed that drifts over seconds (a shared VM's does by
    +-5% between epochs) cancels out; what remains is the cost of a step itself. Printed: the
    median step of each, and the ratio torch/charrec of the medians and of the means of the
    fastest 75% of steps (both >= 0.98 for the target)."""
    trainers = contenders(hidden, batch_size)
    generator = torch.Generator().manual_seed(1)
    coin = random.Random(2)
    for trainer in trainers.values():  # warm-up
        trainer.epoch(torch.randperm(N_IMAGES, generator=generator))
    steps: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        order = torch.randperm(N_IMAGES, generator=generator)
        for start in range(0, N_IMAGES, batch_size):
            index = order[start:start + batch_size]
            names = list(trainers)
            coin.shuffle(names)
            for name in names:
                steps[name].append(trainers[name].step(index))

    def trimmed_mean(values: list[float]) -> float:
        fastest = sorted(values)[:len(values) * 3 // 4]
        return statistics.fmean(fastest)

    medians = {name: statistics.median(values) for name, values in steps.items()}
    return {"hidden": hidden, "steps": len(steps["charrec"]),
            "charrec_step_us": round(medians["charrec"] * 1e6, 1),
            "torch_step_us": round(medians["torch"] * 1e6, 1),
            "ratio": round(medians["torch"] / medians["charrec"], 3),
            "trimmed_ratio": round(trimmed_mean(steps["torch"]) / trimmed_mean(steps["charrec"]),
                                   3)}


def full_training(epochs: int, batch_size: int) -> dict[str, float]:
    images, labels = make_data(N_IMAGES + 600, seed=2)
    data = {
        "train": LetterData(images[:N_IMAGES], labels[:N_IMAGES],
                            [f"train/{i}" for i in range(N_IMAGES)]),
        "validation": LetterData(images[N_IMAGES:], labels[N_IMAGES:],
                                 [f"val/{i}" for i in range(600)]),
    }
    config = make_config({"hidden": "64", "epochs": epochs, "batch_size": batch_size,
                          "augment": False, "device": "cpu"})
    started = time.perf_counter()
    result = run(config, data=data, save=False)
    seconds = time.perf_counter() - started
    return {"architecture": "1024-64-26", "epochs": epochs, "n_train": N_IMAGES, "n_val": 600,
            "batch_size": batch_size, "wall_seconds": round(seconds, 2),
            "seconds_per_epoch": round(seconds / epochs, 4),
            "final_train_loss": round(result.history[-1]["train_loss"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 64],
                        help="hidden widths to compare (one MLP 1024-H-26 each)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7, help="rounds per process (part 1)")
    parser.add_argument("--processes", type=int, default=6,
                        help="fresh processes for part 1, alternately building charrec's or "
                        "torch's contender first")
    parser.add_argument("--control", action="store_true",
                        help="part 1 as an A/A run: torch's MLP against a second copy of itself "
                        "(the ratio that noise and memory placement alone give)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's own choice)")
    parser.add_argument("--step-rounds", type=int, default=5,
                        help="epochs of steps interleaved one by one (part 1b; 0 skips it)")
    parser.add_argument("--train-epochs", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", choices=("charrec", "torch"), default="charrec",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # as charrec's CLI does after importing torch (`charrec.cli.common.import_torch`): torch's
    # million-odd objects out of the garbage collector's reach, so that no full collection
    # (~0.1 s each) lands in one contender's epoch and not the other's
    gc.freeze()
    if args.worker:  # one process of part 1 (`across_processes`)
        print(json.dumps(compare(args.hidden[0], args.batch_size, args.rounds, args.first,
                                 args.control)))
        return

    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "comparisons": [], "interleaved": [], "training": None}
    for hidden in args.hidden:
        result = across_processes(hidden, args)
        report["comparisons"].append(result)
        if not args.json:
            ours = "a second torch MLP (control)" if args.control else "charrec"
            by_order = "; ".join(f"{first} built first: "
                                 + ", ".join(f"{ratio:.3f}" for ratio in ratios)
                                 for first, ratios in result["ratios"].items())
            print(f"MLP 1024-{hidden}-26, batch {args.batch_size}, {ours} vs torch "
                  f"nn.Linear+F.cross_entropy, {args.processes} processes x {args.rounds} "
                  f"rounds, {report['threads']} threads:  ratio {result['ratio']:.3f} (median "
                  f"of the processes' ratios; {by_order}); CPU time {result['cpu_ratio']:.3f}; "
                  f"fastest epochs {result['best_epoch_ratio']:.3f}; rounds' ratios: wall "
                  f"{result['paired_ratio']:.3f}, CPU {result['paired_cpu_ratio']:.3f}; "
                  f"target >= 0.98", flush=True)
    for hidden in args.hidden if args.step_rounds else []:
        result = interleaved(hidden, args.batch_size, args.step_rounds)
        report["interleaved"].append(result)
        if not args.json:
            print(f"MLP 1024-{hidden}-26, steps interleaved ({result['steps']:,} each, random "
                  f"order per batch), CPU time of a step: charrec {result['charrec_step_us']} us"
                  f"  torch {result['torch_step_us']} us  ratio {result['ratio']:.3f} "
                  f"(fastest 75%: {result['trimmed_ratio']:.3f}; one process, charrec built "
                  f"first)", flush=True)
    if args.train_epochs:
        report["training"] = full_training(args.train_epochs, args.batch_size)
        if not args.json:
            training = report["training"]
            print(f"charrec.train.run: {training['epochs']} epochs of a 1024-64-26 MLP on "
                  f"{training['n_train']} 32x32 images (+{training['n_val']} validated each "
                  f"epoch): {training['wall_seconds']:.2f} s "
                  f"({1000 * training['seconds_per_epoch']:.1f} ms/epoch)")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
