"""`charrec sweep FILE`: run a YAML experiment (grid or random search) and report it.

Parsing lives in `charrec.sweep.spec`, running and the run folder in `charrec.sweep.runner`, where
trials run in `charrec.sweep.executors` (on Ray: `charrec.sweep.ray_executor`), tables and plots in
`charrec.sweep.report`; this module only wires them to options and a live progress display.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from charrec.cli.common import Command, Debug, fail, friendly_errors, interrupted, write_extra
from charrec.errors import ConfigError, WriteError
from charrec.report import console, escape

EXECUTORS = ("local", "ray")


def parse_set_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--set epochs=5 --set hidden=256,128` -> {"epochs": 5, "hidden": "256,128"}."""
    import yaml

    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, separator, text = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. --set epochs=5), got {pair!r}")
        try:
            values[key.strip()] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            values[key.strip()] = text
    return values


@friendly_errors
def sweep_command(
    config_file: Annotated[str | None, typer.Argument(metavar="STUDY|FILE", help="A built-in study by name (see --list), or a sweep YAML file. Optional with --resume.", show_default=False)] = None,
    list_studies: Annotated[bool, typer.Option("--list", help="List the built-in studies (name, trials, what they vary) and exit.")] = False,
    jobs: Annotated[int | None, typer.Option(min=1, help="Trials run at once, each in a worker process (1: one after another in this process). [default: one per core, at most one per trial]", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads per trial. [default: 1 when several trials run at once; every core with --jobs 1]", show_default=False)] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Run folder. [default: runs/<name>-<timestamp>]", show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder: only unfinished trials run; refused if the sweep changed.")] = None,
    keep: Annotated[str, typer.Option(help="Trial checkpoints to keep: all, best (only the best trial's) or none.")] = "all",
    data_dir: Annotated[str | None, typer.Option(help="Dataset for every trial (replaces base: data_dir). Built-in letters are generated there if it is missing.")] = None,
    set_options: Annotated[list[str] | None, typer.Option("--set", help="Replace a base: option, KEY=VALUE; repeat for several (e.g. --set epochs=5).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the trials and exit.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail trials on unreadable images instead of skipping them.")] = False,
    executor_name: Annotated[str, typer.Option("--executor", help="Where trials run: local (this machine: --jobs processes) or ray (a Ray cluster; needs charrec[ray]).")] = "local",
    address: Annotated[str | None, typer.Option(help="With --executor ray: the cluster, HOST:PORT or auto (the one `ray start` made here). Without it: RAY_ADDRESS, else a local Ray of --jobs x --threads CPUs is started and stopped.")] = None,
    debug: Debug = False,
) -> None:
    """Run a sweep: train every trial of a YAML grid or random search, then show the table."""
    from charrec.studies import find_config
    from charrec.sweep.report import trials_table
    from charrec.sweep.runner import KEEP_CHOICES, RunFolder, default_run_dir
    from charrec.sweep.spec import expand, load_sweep

    if list_studies:
        print_studies()
        return
    if keep not in KEEP_CHOICES:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    if executor_name not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got "
                          f"{executor_name!r}")
    if executor_name == "ray":
        from charrec.sweep.ray_executor import require_ray

        require_ray()  # before anything is made
    elif address is not None:
        raise ConfigError("--address is the Ray cluster to run on: it needs --executor ray")
    overrides = parse_set_options(set_options)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if resume is not None:
        if out_dir is not None:
            raise ConfigError("--resume continues the run in its own folder; drop --out-dir")
        source = find_config(config_file) if config_file else RunFolder(resume).spec_path
        RunFolder(resume).meta()  # a clear error if it is not a run folder
    elif config_file is None:
        raise ConfigError("give a built-in study or a sweep file (e.g. `charrec sweep momentum`; "
                          "`charrec sweep --list` shows them) or --resume RUN_DIR")
    else:
        source = find_config(config_file)
    spec = load_sweep(source, overrides)
    trials = expand(spec)
    if dry_run:
        console.print(trials_table(trials, spec.varied))
        n_points = len({trial.point for trial in trials})
        console.print(f"Sweep {spec.name}: {n_points} point(s) × {spec.repeats} repeat(s) = "
                      f"{len(trials)} trials. Nothing was run (--dry-run).", soft_wrap=True)
        return
    run_dir = resume or out_dir or default_run_dir(spec.name)
    check_destinations(run_dir, trials)
    ensure_data(trials, strict)
    if jobs is None:
        from charrec.sweep.executors import default_jobs

        jobs = default_jobs(len(trials), threads)
    folder = None
    try:
        with _executor(executor_name, address, jobs, threads) as executor:
            folder = (RunFolder.reopen(resume, trials) if resume is not None else
                      RunFolder.create(run_dir, spec, trials))
            if executor_name == "ray":
                executor.check_shared_paths(folder.path, sorted({trial.config["data_dir"]
                                                                 for trial in trials}))
            _run_and_report(folder, spec, trials, executor, keep, strict)
    except KeyboardInterrupt:
        # outside the trials' loop (starting, reporting, stopping the workers): once the run
        # folder exists, what it holds is kept and the run can be continued all the same
        if folder is None:
            raise
        raise interrupted(f"; finished trials are saved in {folder.path}. Continue with: "
                          f"charrec sweep --resume {folder.path}") from None


def print_studies() -> None:
    """`charrec sweep --list`: each built-in study with its trial count and description."""
    from rich.table import Table

    from charrec.studies import builtin_configs
    from charrec.sweep.spec import expand, load_sweep

    table = Table(title="Built-in studies (charrec sweep NAME)")
    for column in ("Study", "Trials", "What it studies"):
        table.add_column(column, justify="right" if column == "Trials" else "left")
    configs = builtin_configs().values()
    for config in configs:
        if config.is_sweep:
            trials = len(expand(load_sweep(config.path)))
            table.add_row(config.name, str(trials), config.description)
    console.print(table)
    others = [config.name for config in configs if not config.is_sweep]
    if others:
        console.print(f"Train configs (charrec train --config NAME): {', '.join(others)}")


def _executor(name: str, address: str | None, jobs: int,
              threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """The executor, started: a Ray connection is made (and checked) before the run folder."""
    from charrec.sweep.executors import make_executor

    if name == "ray":
        from charrec.sweep.ray_executor import RayExecutor

        return RayExecutor(address or os.environ.get("RAY_ADDRESS") or None, jobs, threads)
    return contextlib.nullcontext(make_executor(jobs, threads))


def check_destinations(run_dir: Path, trials: list) -> None:
    """Before rendering or training: the run folder, and each folder the built-in letters must
    be rendered into, can take a file (`WriteError` otherwise)."""
    from charrec.data.builtin.synth import holds_anything
    from charrec.files import check_writable

    check_writable(run_dir, f"the sweep's run folder {run_dir}",
                   "nothing was run; choose a writable --out-dir")
    for data_dir in dict.fromkeys(Path(trial.config["data_dir"]) for trial in trials):
        if not holds_anything(data_dir):
            check_writable(data_dir.parent, f"the built-in letters to {data_dir} (no dataset "
                           f"there yet)", "nothing was rendered or run; give --data-dir a "
                           "dataset or a writable folder")


def ensure_data(trials: list, strict: bool) -> None:
    """Render the built-in letters where a trial's data folder holds nothing yet, before any
    worker starts: `charrec train`'s data step, with its progress display. The letters stay in
    memory for the trials (or the file the workers share)."""
    from charrec.cli.train import progress_display, training_callbacks
    from charrec.data.builtin.synth import holds_anything
    from charrec.sweep.spec import trial_config
    from charrec.sweep.trial import trial_data

    for trial in trials:
        config = trial_config(trial)
        if not holds_anything(Path(config.data_dir)):
            with progress_display() as progress:
                trial_data(config, strict, callbacks=training_callbacks(progress, config, None))


def _run_and_report(folder: Any, spec: Any, trials: list, executor: Any, keep: str,
                    strict: bool) -> None:
    from charrec.sweep.report import (
        nodes_line,
        print_results,
        progress_info,
        progress_line,
        trial_line,
        write_plots,
    )
    from charrec.sweep.results import best_point, summarise
    from charrec.sweep.runner import run_sweep

    where = f" on {executor.describe()}" if hasattr(executor, "describe") else ""
    console.print(f"Sweep {spec.name}: {len(trials)} trials, {executor.jobs} at a time "
                  f"({executor.threads} torch thread(s) each){where}. Run folder: {folder.path}",
                  soft_wrap=True)
    # a live bar on a terminal; elsewhere (a log file, a batch job) one line per trial
    with _progress() as progress:
        live = progress is not None
        task = progress.add_task("trials", total=len(trials), info="starting",
                                 finish_at=None) if live else None

        def on_progress(status: Any) -> None:
            if status.last is not None:
                console.print(trial_line(status.last) if live else progress_line(status),
                              soft_wrap=True)
            elif status.skipped:
                console.print(f"Resuming: {status.skipped} of {status.total} trials already "
                              f"finished; running the rest.")
            if live:
                eta = status.eta_seconds()
                progress.update(task, completed=status.done, info=progress_info(status),
                                finish_at=None if eta is None else time.monotonic() + eta)

        try:
            status = run_sweep(folder, spec, trials, executor, keep=keep, strict=strict,
                               on_progress=on_progress)
        except KeyboardInterrupt:
            if live:
                progress.stop()
            raise interrupted(f"; finished trials are saved in {folder.path}. Continue with: "
                              f"charrec sweep --resume {folder.path}") from None
        except WriteError as error:  # a run folder file: stop, the disk needs fixing first
            if live:
                progress.stop()
            raise fail(escape(f"{error}. Continue with: charrec sweep --resume "
                              f"{folder.path}")) from None
    summaries = summarise(trials, status.rows)
    best = best_point(summaries)
    print_results(spec, summaries, best)
    if nodes := nodes_line(status.rows[status.skipped:]):
        console.print(nodes, soft_wrap=True)
    plots = write_extra(lambda: write_plots(folder.path, spec, summaries)) or []
    if best is not None:
        shown = f"; plots: {', '.join(str(path) for path in plots)}" if plots else ""
        console.print(f"Best: {best.label()}: val acc {best.describe('val_accuracy')}, test acc "
                      f"{best.describe('test_accuracy')}. Results: "
                      f"{folder.path / 'results.csv'}{shown}", soft_wrap=True)
        console.print(f"Train the best config: charrec train --config "
                      f"{folder.path / 'best.yaml'}", soft_wrap=True)
    if status.write_failures:  # the disk, not the trials: the final line says so
        first = status.write_failures[0]
        raise fail(escape(f"{len(status.write_failures)} trial(s) could not be saved ("
                          f"{first['trial']}: {first.get('reason', '')}). Free space or fix the "
                          f"folder. Continue with: charrec sweep --resume {folder.path}"))
    if best is None:
        raise fail(f"every trial failed; see {folder.path / 'results.jsonl'}")


def _progress() -> Any:
    """The sweep's rich Progress on a terminal; None (as a context) elsewhere."""
    if not console.is_terminal:
        return contextlib.nullcontext()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    from charrec.sweep.report import eta_text

    class CountdownColumn(ProgressColumn):
        """The ETA, counting down between trials (`finish_at`: a time.monotonic() instant)."""

        def render(self, task: Any) -> Text:
            finish_at = task.fields.get("finish_at")
            return Text(eta_text(None if finish_at is None else finish_at - time.monotonic()))

    columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               CountdownColumn(), TextColumn("{task.fields[info]}"))
    return Progress(*columns, console=console.rich)


def register(app: typer.Typer) -> None:
    app.command("sweep", cls=Command)(sweep_command)
