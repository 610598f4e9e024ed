"""Peak memory of the default `charrec train` and of a sweep with `--jobs 2`.

    python benchmarks/peak_memory.py [--epochs N] [--sweep-epochs 2] [--data-dir DIR]

1. `charrec train` with every default in an empty temporary folder: it renders the built-in
   letters (worker processes), decodes them and trains the default MLP (`--epochs` shortens it;
   memory peaks in the first epoch, later epochs allocate nothing new). With `--data-dir`, an
   existing dataset is used instead and nothing is rendered.
2. `charrec sweep --jobs 2` of two trials at once on that dataset: `configs/momentum.yaml`'s base
   with two momenta and `--sweep-epochs` epochs.

Each command runs as a child process; every 50 ms the sampler adds up the memory of the child
and all its descendants (worker processes included) from /proc: resident set size (RSS, which
counts memory shared between processes once per process) and proportional set size (PSS, which
splits shared pages among their sharers, so the sum is the memory really used). Printed: the
peak sum of each, the largest single process, and the wall time. Linux only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Peak:
    rss: int = 0
    pss: int = 0
    largest: int = 0
    processes: int = 0
    seconds: float = 0.0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes; (0, 0) for a process that has just gone."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            rss = int(statm.read().split()[1]) * PAGE
        pss = 0
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


def measure(command: list[str], cwd: Path) -> Peak:
    peak = Peak()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        pids = descendants(process.pid)
        sizes = [memory_of(pid) for pid in pids]
        peak.rss = max(peak.rss, sum(rss for rss, _ in sizes))
        peak.pss = max(peak.pss, sum(pss for _, pss in sizes))
        peak.largest = max(peak.largest, *(rss for rss, _ in sizes))
        peak.processes = max(peak.processes, sum(1 for rss, _ in sizes if rss))
        time.sleep(0.05)
    peak.seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{process.stderr.read()}")
    return peak


def show(name: str, peak: Peak) -> None:
    mib = 1024 * 1024
    print(f"{name}: peak PSS {peak.pss / mib:.0f} MiB (sum over up to {peak.processes} "
          f"processes), peak RSS sum {peak.rss / mib:.0f} MiB, largest process "
          f"{peak.largest / mib:.0f} MiB; {peak.seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: charrec's (30)")
    parser.add_argument("--sweep-epochs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    charrec = [sys.executable, "-m", "charrec"]
    with tempfile.TemporaryDirectory(prefix="charrec-memory-") as temp:
        folder = Path(temp)
        train = [*charrec, "train"]
        if args.data_dir is not None:
            train += ["--data-dir", str(args.data_dir.resolve())]
        if args.epochs is not None:
            train += ["--epochs", str(args.epochs)]
        what = "fresh (renders the built-in letters)" if args.data_dir is None else "existing data"
        show(f"charrec train, {what}, {args.epochs or 'default'} epochs", measure(train, folder))

        data_dir = (args.data_dir.resolve() if args.data_dir is not None
                    else folder / "data" / "character_classification")
        spec = yaml.safe_load((ROOT / "configs" / "momentum.yaml").read_text())
        spec["base"].update(epochs=args.sweep_epochs, data_dir=str(data_dir))
        spec["grid"] = {"momentum": [0.9, 0.95]}
        spec["repeats"] = 1
        sweep_file = folder / "sweep.yaml"
        sweep_file.write_text(yaml.safe_dump(spec))
        sweep = [*charrec, "sweep", str(sweep_file), "--jobs", "2", "--out-dir",
                 str(folder / "runs")]
        show(f"charrec sweep --jobs 2 (2 trials of configs/momentum.yaml's base, "
             f"{args.sweep_epochs} epochs)", measure(sweep, folder))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
