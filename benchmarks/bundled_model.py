"""Regenerate the bundled model from its recipe, and measure it on real letters.

    python benchmarks/bundled_model.py [--recipe configs/bundled.yaml]
                                       [--realdev ../shared/realdev] [--threads 1]
                                       [--work-dir saved_models/bundle-work] [--fresh]
                                       [--out charrec/models/bundled.pth]
    python benchmarks/bundled_model.py --measure-only   # re-measure the committed model
    python benchmarks/bundled_model.py --export-only    # rewrite bundled.onnx from bundled.pth

The recipe (`configs/bundled.yaml`) has two sections: `data` (options of the built-in letters:
`per_class`, `seed`) and `train` (`charrec train` options). The script renders the built-in
letters into `--work-dir`, trains with `charrec.train.run` (the same pipeline as
`charrec train`), measures the model on every folder-per-letter set under `--realdev` (real
photos and handwriting: measured only, never trained on), and writes the checkpoint with a
`bundle` entry: the recipe text, the charrec version, the rendering and training times, the
machine's core count and the real-letter accuracies. Paths of this machine are not stored: the
config's `data_dir` and `out` are replaced by the defaults. Training only ever sees the built-in
synthetic letters.

Beside the checkpoint it writes the same network in ONNX form (`bundled.onnx`, with
`charrec.export`, checked against torch on ONNX Runtime), which `charrec predict` runs without
importing torch. `--export-only` rewrites that file from the committed checkpoint without
training (after the checkpoint was retrained elsewhere, or the exporter changed). Both files
together stay under 5 MB.

A long run can be stopped (Ctrl-C, a reboot) and resumed: run the same command again. The
rendered letters and the training checkpoint (saved after every new best epoch and at least
every 30 s, with the optimizer and random-generator states) stay in `--work-dir`, and the run
continues from the last saved epoch to the same weights as an unbroken run (the recorded
training time adds up the sessions). A work folder left by another recipe is refused;
`--fresh` starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch
import yaml

from charrec import __version__
from charrec.checkpoint import load_checkpoint, load_model, save_checkpoint
from charrec.config import make_config, replace
from charrec.data.builtin.synth import generate_dataset
from charrec.export import export_model
from charrec.measure import measure
from charrec.reader import load_reader
from charrec.train import run

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "charrec" / "models" / "bundled.pth"
MAX_BYTES = 5 * 1024 * 1024


def read_recipe(path: Path) -> tuple[dict, dict, str]:
    text = path.read_text()
    recipe = yaml.safe_load(text)
    return recipe.get("data", {}), recipe["train"], text


def measure_realdev(model_path: Path, realdev: Path) -> dict[str, dict]:
    """Accuracy on each folder-per-letter set under `realdev` (whole folder as a test set)."""
    reader = load_reader(model_path, "torch")
    results = {}
    for folder in sorted(path for path in realdev.iterdir() if path.is_dir()):
        measurement = measure(reader, reader.config, folder)
        per_class = measurement.per_class()
        weakest = sorted((values["accuracy"], letter) for letter, values in per_class.items()
                         if values["accuracy"] is not None)[:5]
        results[folder.name] = {
            "accuracy": measurement.accuracy, "n_correct": measurement.n_correct,
            "n_images": len(measurement.data),
            "weakest": [{"letter": letter, "accuracy": round(accuracy, 3)}
                        for accuracy, letter in weakest],
        }
        print(f"{folder.name}: {measurement.accuracy:.1%} ({measurement.n_correct}/"
              f"{len(measurement.data)}); weakest "
              + ", ".join(f"{letter} {accuracy:.0%}" for accuracy, letter in weakest), flush=True)
    return results


def render_letters(letters: Path, data_options: dict) -> float:
    """The recipe's built-in letters at `letters` (rendered once: the folder appears whole, so a
    run stopped while rendering renders again); returns the seconds rendering took."""
    manifest_path = letters / "manifest.json"
    if not manifest_path.is_file():
        started = time.perf_counter()
        generate_dataset(letters, per_class=data_options.get("per_class", 1000),
                         seed=data_options.get("seed", 0))
        print(f"rendered the built-in letters in {time.perf_counter() - started:.0f} s",
              flush=True)
    return float(json.loads(manifest_path.read_text())["render_seconds"])


def resume_state(model_path: Path):
    """The training state saved in the work folder by an earlier session, or None."""
    from charrec.train import TrainState

    if not model_path.is_file():
        return None
    checkpoint = load_checkpoint(model_path)
    if "resume" not in checkpoint:
        return None
    state = TrainState.from_checkpoint(checkpoint)
    print(f"resuming after epoch {state.epoch} ({state.train_seconds:.0f} s of training so far)",
          flush=True)
    return state


def prepare_work_dir(work: Path, recipe_text: str, fresh: bool) -> None:
    """The work folder of this recipe: new, or left by an earlier session of the same recipe."""
    recipe_copy = work / "recipe.yaml"
    if fresh and work.exists():
        shutil.rmtree(work)
    if recipe_copy.is_file() and recipe_copy.read_text() != recipe_text:
        raise SystemExit(f"{work} holds a run of another recipe; run with --fresh to start over "
                         f"(or choose another --work-dir)")
    work.mkdir(parents=True, exist_ok=True)
    recipe_copy.write_text(recipe_text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "bundled.yaml")
    parser.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev")
    parser.add_argument("--out", type=Path, default=BUNDLED)
    parser.add_argument("--work-dir", type=Path, default=REPO / "saved_models" / "bundle-work")
    parser.add_argument("--fresh", action="store_true", help="discard an earlier session's work")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("--export-only", action="store_true",
                        help="only rewrite the ONNX form of the checkpoint at --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure_only:
        print(json.dumps(measure_realdev(args.out, args.realdev), indent=1))
        return
    if args.export_only:
        write_onnx(args.out)
        return
    data_options, train_options, recipe_text = read_recipe(args.recipe)
    prepare_work_dir(args.work_dir, recipe_text, args.fresh)
    letters, model_path = args.work_dir / "letters", args.work_dir / "model.pth"
    render_seconds = render_letters(letters, data_options)
    config = make_config(train_options, {"data_dir": str(letters), "out": str(model_path)})

    def on_epoch(metrics, is_best) -> None:
        print(f"epoch {metrics.epoch}: train loss {metrics.train_loss:.4f}, val acc "
              f"{metrics.val_accuracy:.4f}{' *' if is_best else ''} "
              f"({metrics.seconds:.0f} s)", flush=True)

    from charrec.train import Callbacks

    state = resume_state(model_path)
    result = run(config, Callbacks(on_epoch=on_epoch), resume=state)
    if result.interrupted:
        raise SystemExit(f"interrupted after epoch {result.state.epoch}; run the same command "
                         f"again to resume")
    realdev = measure_realdev(result.checkpoint, args.realdev)
    checkpoint = load_checkpoint(result.checkpoint)
    defaults = make_config({})
    clean = replace(config, data_dir=defaults.data_dir, out=defaults.out)
    checkpoint.pop("resume", None)  # the bundled model is for reading, not for --resume
    checkpoint["config"] = clean.to_dict()
    checkpoint["bundle"] = {
        "recipe": recipe_text, "command": "python benchmarks/bundled_model.py",
        "charrec_version": __version__, "torch_version": str(torch.__version__),
        "render_seconds": round(render_seconds, 1),
        "train_seconds": round(result.train_seconds, 1), "threads": args.threads,
        "resumed_after_epoch": state.epoch if state else None, "cpu_count": os.cpu_count(),
        "built_in_test_accuracy": result.test_accuracy, "realdev": realdev,
    }
    path = save_checkpoint(args.out, checkpoint)
    size = path.stat().st_size
    print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
          f"({size / 1e6:.2f} MB; train {result.train_seconds:.0f} s)")
    write_onnx(path)


def write_onnx(checkpoint_path: Path) -> None:
    """The checkpoint's ONNX form beside it (`bundled.onnx`); both files under 5 MB."""
    model, config, checkpoint = load_model(checkpoint_path)
    result = export_model(model, config, checkpoint, checkpoint_path.with_suffix(".onnx"))
    total = checkpoint_path.stat().st_size + result.size_bytes
    print(f"wrote {result.path.name} ({result.size_bytes / 1e6:.2f} MB; ONNX Runtime vs torch: "
          f"largest logit difference {result.max_difference:.1g} on {result.n_checked} images); "
          f"{checkpoint_path.name} and {result.path.name} together {total / 1e6:.2f} MB")
    if total > MAX_BYTES:
        raise SystemExit(f"the bundled model's files take {total / 1e6:.1f} MB, over the 5 MB "
                         f"limit")


if __name__ == "__main__":
    main()
