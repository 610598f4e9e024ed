"""`charrec summary`: the textbook CNN table exactly, MLP tables, and summaries of checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from charrec.cli import app
from charrec.config import make_config
from charrec.nn.model import build_model
from charrec.tools.summary import LayerRow, architecture_line, summarise_config, total_params
from tests.helpers import count_parameters

runner = CliRunner()

TEXTBOOK_OPTIONS = ["--arch", "cnn", "--norm-size", "400,400", "--channels", "3", "--conv",
                    "5x5x20,3x3x30,3x3x20,3x3x10", "--classes", "10", "--no-bias"]
TEXTBOOK_ROWS = [
    ("Conv1", "400×400×3", "5×5/1", "400×400×20", 1500),
    ("Pool1", "400×400×20", "2×2/2", "200×200×20", 0),
    ("Conv2", "200×200×20", "3×3/1", "200×200×30", 5400),
    ("Pool2", "200×200×30", "2×2/2", "100×100×30", 0),
    ("Conv3", "100×100×30", "3×3/1", "100×100×20", 5400),
    ("Pool3", "100×100×20", "2×2/2", "50×50×20", 0),
    ("Conv4", "50×50×20", "3×3/1", "50×50×10", 1800),
    ("Pool4", "50×50×10", "2×2/2", "25×25×10", 0),
    ("FC", "6250", "–", "10", 62500),
]


def _table_rows(output: str) -> list[list[str]]:
    """The cells of each body row of a rich table (box-drawing borders stripped)."""
    rows = []
    for line in output.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_textbook_cnn_table_exactly() -> None:
    result = runner.invoke(app, ["summary", *TEXTBOOK_OPTIONS])
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.stdout)
    expected = [[*row[:4], str(row[4])] for row in TEXTBOOK_ROWS]
    assert rows == [*expected, ["Total", "", "", "", "76600"]]
    header = next(line for line in result.stdout.splitlines() if "Layer" in line)
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "Layer", "Input", "Filter/Stride", "Output", "Params"]


def test_textbook_cnn_json() -> None:
    result = runner.invoke(app, ["summary", *TEXTBOOK_OPTIONS, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [tuple(row.values()) for row in summary["layers"]] == TEXTBOOK_ROWS
    assert summary["total_params"] == 76600


def test_with_bias_each_conv_and_the_fc_gain_one_parameter_per_output() -> None:
    config = make_config({"arch": "cnn", "norm_size": "400,400", "channels": 3,
                          "conv": "5x5x20,3x3x30,3x3x20,3x3x10"})
    assert total_params(summarise_config(config, 10)) == 76600 + 20 + 30 + 20 + 10 + 10


def test_mlp_summary_rows() -> None:
    result = runner.invoke(app, ["summary", "--hidden", "256,128", "--layers", "3", "--json"])
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["layers"]
    assert [(row["layer"], row["input"], row["output"], row["params"]) for row in layers] == [
        ("FC1", "1024", "256", 1024 * 256 + 256),
        ("FC2", "256", "128", 256 * 128 + 128),
        ("FC3", "128", "26", 128 * 26 + 26),
    ]
    assert all(row["filter"] == "–" for row in layers)


def test_linear_classifier_summary_is_one_fc_row() -> None:
    rows = summarise_config(make_config({"layers": 1, "hidden": "none", "norm_size": "16,16"}))
    assert rows == [LayerRow("FC", "256", "–", "26", 256 * 26 + 26)]


@pytest.mark.parametrize("options", [
    {"arch": "cnn", "conv": "5x5x8,3x3x16", "norm_size": "32,32"},
    {"arch": "cnn", "conv": "3x3x4", "norm_size": "20,12", "bias": False},
    {"arch": "mlp", "hidden": "64,32", "norm_size": "24,24"},
])
def test_summary_total_equals_the_real_models_parameter_count(options: dict) -> None:
    config = make_config(options)
    assert total_params(summarise_config(config)) == count_parameters(build_model(config, 26))


def test_summary_of_a_checkpoint(tmp_path) -> None:
    from charrec.checkpoint import make_checkpoint, save_checkpoint

    config = make_config({"arch": "cnn", "conv": "3x3x4,3x3x8", "norm_size": "16,16"})
    model = build_model(config, 26)
    path = save_checkpoint(tmp_path / "cnn.pth", make_checkpoint(config, model.state_dict(), {}))
    result = runner.invoke(app, ["summary", "--model", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [row["layer"] for row in summary["layers"]] == ["Conv1", "Pool1", "Conv2", "Pool2",
                                                          "FC"]
    assert summary["layers"][-1]["input"] == str(4 * 4 * 8)
    assert summary["total_params"] == count_parameters(model)


def test_summary_model_and_architecture_options_together_is_an_error(tmp_path) -> None:
    result = runner.invoke(app, ["summary", "--model", str(tmp_path / "x.pth"), "--arch", "cnn"])
    assert result.exit_code == 2  # a usage error
    assert "drop --arch" in result.stderr


def test_summary_missing_checkpoint_is_one_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["summary", "--model", str(tmp_path / "missing.pth")])
    assert result.exit_code == 1
    assert "checkpoint not found" in result.stderr and "Traceback" not in result.output


def test_summary_of_a_huge_network_allocates_no_weights() -> None:
    """400x400x3 into a 4096-wide MLP: ~2e9 weights, summarised on the meta device."""
    config = make_config({"norm_size": "400,400", "channels": 3, "hidden": "4096"})
    rows = summarise_config(config)
    assert rows[0].params == 400 * 400 * 3 * 4096 + 4096
    assert torch.empty(0).device.type == "cpu"  # the meta device did not leak out


def test_architecture_line() -> None:
    config = make_config({"arch": "cnn", "conv": "5x5x20,3x3x30", "norm_size": "32,32"})
    assert architecture_line(config).startswith("cnn 32×32×1 → 16×16×20 → 8×8×30 → 26 (")
    assert architecture_line(make_config({"hidden": "64"})) == (
        "mlp 32×32×1 → 64 → 26 (67,290 parameters)")  # 1024*64+64 + 64*26+26
