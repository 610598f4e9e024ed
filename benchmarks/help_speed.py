"""How long `charrec --help` and `charrec train --help` take (target: under 0.3 s each).

    python benchmarks/help_speed.py [--rounds 15]

Each is a fresh process of the installed `charrec` script (next to this Python), timed
alternately with two references: a bare Python start-up (`python -c pass`) and
`python -c "import typer"` (the least a Typer CLI pays). Printed: the median and fastest wall
time of each, whether the median is under the target, and the median CPU time (user + system)
of the process, which other jobs on a busy machine disturb less than the wall time (on an idle
machine the two are nearly equal: these programs are single-threaded and read cached files).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.3


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("charrec")
    charrec = [str(script)] if script.exists() else [sys.executable, "-m", "charrec"]
    contenders = {
        "charrec --help": [*charrec, "--help"],
        "charrec train --help": [*charrec, "train", "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    }
    for command in contenders.values():  # warm the file cache
        timed(command)
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(args.rounds):
        names = list(contenders) if round_index % 2 == 0 else list(contenders)[::-1]
        for name in names:
            wall, cpu = timed(contenders[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    for name, values in walls.items():
        median = statistics.median(values)
        verdict = (f"  {'under' if median < TARGET else 'OVER'} the {TARGET} s target"
                   if name.startswith("charrec") else "")
        print(f"{name:26s} wall median {median:.3f} s, fastest {min(values):.3f} s; "
              f"CPU median {statistics.median(cpus[name]):.3f} s{verdict}")
    print(f"({args.rounds} rounds, {' '.join(charrec)})")


if __name__ == "__main__":
    main()
