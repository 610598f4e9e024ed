"""`charrec export`: write a trained network as an ONNX model, checked on ONNX Runtime.

A thin command over `charrec.export`; `register(app)` adds it to the main Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrec.cli.common import Command, Debug, friendly_errors, import_torch, plain_line, print_json


@friendly_errors
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.onnx", help="Where to write the ONNX model.", show_default=False)],
    model: Annotated[str | None, typer.Option("--model", "-m", metavar="PATH|bundled", help="Checkpoint to export, or 'bundled'. [default: saved_models/recognition.pth if it exists, else bundled]", show_default=False)] = None,
    opset: Annotated[int, typer.Option(help="ONNX operator set version to write (13 or newer).")] = 17,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Write a model as ONNX (input `image` [N,1,H,W] after charrec's preprocessing, output
    `logits` [N,26]); it is run on ONNX Runtime first and refused if its logits differ from
    torch's by more than 1e-4."""
    from charrec.errors import ConfigError
    from charrec.models.resolve import resolve_model

    choice = resolve_model(model)
    if choice.is_onnx:
        raise ConfigError(f"{choice.path} is an ONNX model already; export reads a charrec "
                          f"checkpoint (.pth)")
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {out}: name the file FILE.onnx")
    import_torch()
    from charrec.checkpoint import load_model
    from charrec.export import TOLERANCE, export_model, import_onnx

    import_onnx()  # before loading anything: a missing package is the first thing to say
    network, config, checkpoint = load_model(choice.path)
    result = export_model(network, config, checkpoint, out, opset)
    summary = {"onnx": str(result.path), "model": str(choice.path), "opset": result.opset,
               "size_bytes": result.size_bytes, "n_checked": result.n_checked,
               "max_logit_difference": result.max_difference}
    if json_output:
        print_json(summary)
        return
    plain_line(f"Wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, opset {result.opset}); "
               f"ONNX Runtime matches torch on {result.n_checked} images (largest logit "
               f"difference {result.max_difference:.1g}, limit {TOLERANCE:g}).")


def register(app: typer.Typer) -> None:
    app.command("export", cls=Command)(export_command)
