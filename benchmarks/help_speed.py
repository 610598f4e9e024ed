"""How long `charrec --help` and every subcommand's `--help` take (target: under 0.3 s each).

    python benchmarks/help_speed.py [--rounds 15] [--commands train,predict]

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


def subcommands() -> list[str]:
    """Every command of the app, sub-apps' commands as "data import" etc."""
    import typer

    from charrec.cli import app

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():
        names.append(name)
        names += [f"{name} {sub}" for sub in getattr(command, "commands", {})]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--commands", default=None,
                        help="comma-separated subcommands [default: all of them]")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("charrec")
    charrec = [str(script)] if script.exists() else [sys.executable, "-m", "charrec"]
    commands = args.commands.split(",") if args.commands else subcommands()
    contenders = {
        "charrec --help": [*charrec, "--help"],
        **{f"charrec {name} --help": [*charrec, *name.split(), "--help"] for name in commands},
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
        print(f"{name:34s} wall median {median:.3f} s, fastest {min(values):.3f} s; "
              f"CPU median {statistics.median(cpus[name]):.3f} s{verdict}")
    print(f"({args.rounds} rounds, {' '.join(charrec)})")


if __name__ == "__main__":
    main()
