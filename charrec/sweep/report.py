"""What a sweep shows: the live progress line, the results table, and its PNG plots.

Plots: validation accuracy vs epoch (one curve per point, mean ± std over repeats); for each
varied option the final validation and test accuracy vs the option's value (log axis for the
learning rate and weight decay; categories for text options such as the activation); and each
trial's own loss and accuracy curves (as `charrec train` draws them), where an oscillating loss
shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from charrec.report import console, percent, pyplot, save_figure
from charrec.sweep.results import PointSummary, format_value
from charrec.sweep.spec import NUMERIC_OPTIONS, SweepSpec, Trial

LOG_AXIS = {"lr": 10, "weight_decay": 10, "batch_size": 2}
TABLE_LEGEND = ("Epoch: the epoch of best validation accuracy; Val/Test: accuracy (%) at that "
                "epoch; Last val: validation accuracy (%) at the last epoch; Time: training "
                "seconds; * marks the best point (highest mean validation accuracy).")


# ------------------------------------------------------------------------------ terminal


def trials_table(trials: Sequence[Trial], varied: Sequence[str]) -> Table:
    """The `--dry-run` listing: one row per trial."""
    table = Table(title=f"{len(trials)} trials")
    for column in ("Trial", "Point", "Repeat", "Seed", *varied):
        table.add_column(column, justify="right")
    for trial in trials:
        table.add_row(trial.trial_id, str(trial.point), str(trial.repeat),
                      str(trial.config["seed"]),
                      *(format_value(trial.options[name]) for name in varied))
    return table


def trial_line(row: dict[str, Any]) -> str:
    """One line per finished trial, printed above the progress bar."""
    options = ", ".join(f"{name}={format_value(value)}" for name, value in row["options"].items())
    head = f"{row['trial']} {options or 'base'} seed {row['seed']}:"
    if row["status"] != "ok":
        return f"{head} [red]failed[/red]: {row.get('reason', '')}"
    return (f"{head} val {percent(row['val_accuracy'])} (epoch {row['best_epoch']}), "
            f"test {percent(row['test_accuracy'])}, {row['train_seconds']:.1f} s")


def eta_text(seconds: float | None) -> str:
    """"ETA 0:01:05"; "ETA –" when not known yet (no trial has finished)."""
    if seconds is None:
        return "ETA –"
    minutes, second = divmod(round(max(0.0, seconds)), 60)
    return f"ETA {minutes // 60}:{minutes % 60:02d}:{second:02d}"


def progress_line(status: Any) -> str:
    """Off a terminal, the line of each finished trial: its result, then where the sweep
    stands ("[3/8, ETA 0:00:42]")."""
    return (f"{trial_line(status.last)}  [{status.done}/{status.total}, "
            f"{eta_text(status.eta_seconds())}]")


def progress_info(status: Any) -> str:
    best = status.best
    text = f"running {status.running} · failed {status.failed}"
    if best is not None:
        text += f" · best {best.describe('val_accuracy')} ({best.label()})"
    return text


def nodes_line(rows: Sequence[dict[str, Any]]) -> str | None:
    """How many Ray nodes ran these rows, and how many rows each (None: none ran on Ray)."""
    counts = Counter((row["node_ip"], row["node"][:8]) for row in rows if row.get("node"))
    if not counts:
        return None
    each = ", ".join(f"{address} ({node}): {count}"
                     for (address, node), count in sorted(counts.items()))
    return (f"{sum(counts.values())} trial(s) ran on {len(counts)} Ray node(s): {each} "
            f"(node and pid of each: results.jsonl)")


def results_table(spec: SweepSpec, summaries: Sequence[PointSummary],
                  best: PointSummary | None) -> Table:
    """One row per point: varied options, best epoch, val/test accuracy at that epoch, val
    accuracy at the last epoch, train time; mean ± std over the repeats; the best row
    highlighted."""
    headers = ["#", *spec.varied, "Runs", "Epoch", "Val %", "Last val %", "Test %", "Time s"]
    rows, styles = [], []
    for summary in summaries:
        runs = f"{summary.n_ok}/{summary.n_trials}"
        if summary.n_failed:
            runs += f" [red]({summary.n_failed} failed)[/red]"
        if summary.n_ok:
            cells = [summary.describe("best_epoch", scale=1, digits=1, unit=""),
                     summary.describe("val_accuracy", unit=""),
                     summary.describe("last_val_accuracy", unit=""),
                     summary.describe("test_accuracy", unit=""),
                     summary.describe("train_seconds", scale=1, digits=1, unit="")]
        else:
            reason = summary.reasons[0] if summary.reasons else "not run"
            cells = ["–", f"[red]{reason[:60]}[/red]", "–", "–", "–"]
        is_best = best is not None and summary.point == best.point
        rows.append([("* " if is_best else "") + str(summary.point),
                     *(format_value(summary.options.get(name)) for name in spec.varied),
                     runs, *cells])
        styles.append("bold green" if is_best else None)
    table = Table(title=f"Sweep {spec.name}: mean ± std over {spec.repeats} seed(s) per point",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        # a narrow terminal wraps the "mean ± std" cells, never an option's value
        table.add_column(header, justify="right", no_wrap=header in spec.varied)
    for row, style in zip(rows, styles, strict=True):
        table.add_row(*row, style=style)
    return table


def print_results(spec: SweepSpec, summaries: Sequence[PointSummary],
                  best: PointSummary | None) -> None:
    console.print(results_table(spec, summaries, best))
    console.print(TABLE_LEGEND, soft_wrap=True)


# ------------------------------------------------------------------------------ plots


def plot_val_curves(summaries: Sequence[PointSummary], path: str | Path, title: str) -> Path:
    """Validation accuracy vs epoch, one curve per point (mean, band = ± std)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    curves = [(summary, summary.val_curve()) for summary in summaries if summary.val_curve()]
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20").colors
    for index, (summary, curve) in enumerate(curves):
        epochs, means, stds = zip(*curve, strict=True)
        line, = axis.plot(epochs, means, marker="." if len(epochs) < 30 else None,
                          color=colours[index % len(colours)], label=summary.label(),
                          linestyle="-" if index < len(colours) else "--")
        if summary.n_ok > 1:
            axis.fill_between(epochs, [m - s for m, s in zip(means, stds, strict=True)],
                              [m + s for m, s in zip(means, stds, strict=True)],
                              color=line.get_color(), alpha=0.15)
    axis.set(xlabel="epoch", ylabel="validation accuracy", title=title)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    _legend(axis, len(curves))
    return save_figure(figure, path)


def _legend(axis: Any, entries: int) -> None:
    """Inside the axes when short; beside them when it would hide the data."""
    if entries == 0:
        return
    if entries <= 6:
        axis.legend(fontsize="small")
    else:
        axis.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    ncol=1 + entries // 25)


def _is_numeric(name: str, values: Sequence[Any]) -> bool:
    return name in NUMERIC_OPTIONS or all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in values)


def plot_accuracy_vs_option(summaries: Sequence[PointSummary], option: str,
                            others: Sequence[str], path: str | Path, title: str,
                            connect: bool = True) -> Path:
    """Final validation (solid) and test (dashed) accuracy vs one option's value; one line per
    combination of the `others` options; error bars = std over repeats. Without `connect`
    (random search) the points are not joined."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    done = [summary for summary in summaries if summary.n_ok]
    values = [summary.options[option] for summary in done]
    numeric = _is_numeric(option, values)
    categories = list(dict.fromkeys(format_value(value) for value in values))
    groups: dict[str, list[PointSummary]] = {}
    for summary in done:
        key = ", ".join(f"{name}={format_value(summary.options[name])}" for name in others)
        groups.setdefault(key, []).append(summary)
    def position(summary: PointSummary) -> float:
        value = summary.options[option]
        return float(value) if numeric else categories.index(format_value(value))

    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20").colors
    for index, (key, members) in enumerate(groups.items()):
        members.sort(key=position)
        xs = [position(member) for member in members]
        for metric, line, name in (("val_accuracy", "o-", "val"), ("test_accuracy", "s--", "test")):
            stats = [member.stat(metric) for member in members]
            if None in stats:  # e.g. no test split: tuning (--from) splits train/validation
                continue
            means, stds = zip(*stats, strict=True)
            axis.errorbar(xs, means, yerr=stds, fmt=line if connect else line[0], capsize=3,
                          color=colours[index % len(colours)] if len(groups) > 1 else None,
                          label=f"{name} {key}".strip(), alpha=1.0 if name == "val" else 0.6)
    _set_x_axis(axis, option, values, numeric, categories)
    axis.set(ylabel="accuracy", title=title)
    axis.grid(alpha=0.3)
    _legend(axis, 2 * len(groups) if done else 0)
    return save_figure(figure, path)


def _set_x_axis(axis: Any, option: str, values: Sequence[Any], numeric: bool,
                categories: Sequence[str]) -> None:
    axis.set_xlabel(option + (" (log scale)" if option in LOG_AXIS and numeric else ""))
    if not numeric:
        axis.set_xticks(range(len(categories)), categories)
        return
    if option in LOG_AXIS and values:
        positive = [float(value) for value in values if float(value) > 0]
        if positive and len(positive) == len(values):
            axis.set_xscale("log", base=LOG_AXIS[option])
        elif positive:  # e.g. weight decay 0 next to 1e-4: linear near zero, log beyond
            axis.set_xscale("symlog", linthresh=min(positive), base=LOG_AXIS[option])


def plot_trial_curves(summaries: Sequence[PointSummary], folder: Path) -> Path:
    """Each finished trial's loss and accuracy per epoch, folder/<trial>.png (titled with its
    options), drawn as `charrec train` draws a run's curves."""
    from charrec.report import plot_training_curves

    for summary in summaries:
        for row in summary.ok_rows:
            if row.get("history"):
                plot_training_curves(row["history"], folder / f"{row['trial']}.png",
                                     title=f"{row['trial']}: {summary.label()}, seed "
                                           f"{row['seed']}")
    return folder


def write_plots(run_dir: str | Path, spec: SweepSpec,
                summaries: Sequence[PointSummary]) -> list[Path]:
    """All of a sweep's plots, in run_dir/plots/ (each trial's curves in plots/curves/)."""
    plots = Path(run_dir) / "plots"
    written = [plot_val_curves(summaries, plots / "val_accuracy_vs_epoch.png",
                               f"{spec.name}: validation accuracy per epoch")]
    for option in spec.varied:
        # grid: one line per combination of the other options; random samples: one cloud
        others = [name for name in spec.varied if name != option] if spec.random is None else []
        written.append(plot_accuracy_vs_option(
            summaries, option, others, plots / f"accuracy_vs_{option}.png",
            f"{spec.name}: best-epoch accuracy vs {option}", connect=spec.random is None))
    written.append(plot_trial_curves(summaries, plots / "curves"))
    return written
