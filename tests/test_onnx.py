"""ONNX: `charrec export` writes the same network (checked on ONNX Runtime before it is kept),
`predict`/`test` run .onnx files and the bundled model's ONNX form without importing torch, and
every bad .onnx is one clear line."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from charrec import CLASSES, __version__, export
from charrec.checkpoint import load_model, make_checkpoint, save_checkpoint
from charrec.config import make_config
from charrec.models import resolve
from charrec.models.resolve import bundled_path
from charrec.nn.model import build_model, predict_logits
from charrec.onnx_model import PREPROCESSING, load_onnx
from charrec.reader import load_reader
from tests.helpers import assert_one_line_error, draw_letter, invoke

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(path: Path, seed: int = 0, **options: object) -> Path:
    """A freshly initialised network saved as a checkpoint (training is not what is tested)."""
    torch.manual_seed(seed)
    config = make_config({"norm_size": "16,16", "hidden": "12", **options})
    network = build_model(config, len(CLASSES))
    metrics = {"best_val_accuracy": 0.5, "best_epoch": 1, "history": []}
    save_checkpoint(path, make_checkpoint(config, network.state_dict(), metrics))
    return path


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The suite's tiny checkpoint, in a folder of this module's own."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.pth"
    shutil.copy(tiny_checkpoint, out)
    return out


@pytest.fixture(scope="module")
def model_onnx(model: Path) -> Path:
    out = model.with_name("tiny.onnx")
    result = invoke("export", "--model", model, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def letters(tmp_path: Path) -> list[Path]:
    """Drawn letters, a blank image and a speck: answers and both kinds of warning."""
    rng = random.Random(3)
    paths = []
    for letter in "AKQWZ":
        paths.append(tmp_path / f"{letter}.png")
        draw_letter(letter, rng).save(paths[-1])
    Image.new("L", (32, 32), 200).save(tmp_path / "blank.png")
    speck = Image.new("L", (32, 32), 0)
    speck.putpixel((16, 16), 255)
    speck.save(tmp_path / "speck.png")
    return [*paths, tmp_path / "blank.png", tmp_path / "speck.png"]


# ------------------------------------------------------------------------------------ export


@pytest.mark.parametrize("options", [
    {"arch": "mlp", "act": "relu"}, {"arch": "mlp", "act": "sigmoid", "hidden": "10,7"},
    {"arch": "mlp", "act": "tanh", "bias": False}, {"arch": "mlp", "hidden": "none"},
    {"arch": "mlp", "act": "none"},
    {"arch": "cnn", "conv": "3x3x4,5x3x6"}, {"arch": "cnn", "conv": "3x3x4", "act": "tanh"},
    {"arch": "cnn", "conv": "5x5x3", "bias": False, "norm_size": "13,18"},
], ids=str)
def test_export_computes_the_same_logits_as_torch(tmp_path: Path, options) -> None:
    path = _checkpoint(tmp_path / "model.pth", **options)
    result = invoke("export", "--model", path, "--out", tmp_path / "model.onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_logit_difference"] <= 1e-4
    network, config, _ = load_model(path)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    for batch in (1, 7):  # the batch size is free
        images = np.random.default_rng(batch).uniform(-1, 1, (batch, 1, *config.norm_size))
        images = images.astype(np.float32)
        theirs = session.run(["logits"], {"image": images})[0]
        ours = predict_logits(network, torch.from_numpy(images)).numpy()
        assert theirs.shape == (batch, 26)
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)


def test_export_writes_the_metadata_and_standard_operators(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "cnn.pth", arch="cnn", conv="3x3x4")
    assert invoke("export", "-m", path, "-o", tmp_path / "cnn.onnx", "--opset", "13"
                  ).exit_code == 0
    model = onnx.load(tmp_path / "cnn.onnx")
    properties = {entry.key: entry.value for entry in model.metadata_props}
    assert json.loads(properties["classes"]) == list(CLASSES)
    assert json.loads(properties["norm_size"]) == [16, 16]
    assert properties["charrec_version"] == __version__
    assert properties["preprocessing"] == PREPROCESSING
    assert json.loads(properties["config"])["arch"] == "cnn"
    assert [opset.version for opset in model.opset_import] == [13]
    assert {node.domain for node in model.graph.node} == {""}
    assert [node.op_type for node in model.graph.node] == ["Conv", "MaxPool", "Relu",
                                                           "Flatten", "Gemm"]
    assert [value.name for value in model.graph.input] == ["image"]
    assert [value.name for value in model.graph.output] == ["logits"]


def test_export_refuses_a_model_that_does_not_match_and_leaves_no_file(
        tmp_path: Path, monkeypatch) -> None:
    path = _checkpoint(tmp_path / "model.pth")
    out = tmp_path / "model.onnx"
    monkeypatch.setattr(export, "verify", lambda data, network, images: 3e-3)
    result = invoke("export", "--model", path, "--out", out)
    assert_one_line_error(result, "refused to write", "0.003", "0.0001")
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
    out.write_bytes(b"the previous file")  # a file already there stays as it was
    assert invoke("export", "--model", path, "--out", out).exit_code != 0
    assert out.read_bytes() == b"the previous file"


def test_export_without_the_onnx_package_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    result = invoke("export", "--model", _checkpoint(tmp_path / "m.pth"), "--out",
                    tmp_path / "m.onnx")
    assert_one_line_error(result, "charrec[export]")


@pytest.mark.parametrize("args, fragment", [
    (["--out", "model.pth"], "FILE.onnx"),
    (["--out", "x.onnx", "--opset", "9"], "--opset 9"),
])
def test_export_option_errors(tmp_path: Path, args, fragment) -> None:
    path = _checkpoint(tmp_path / "m.pth")
    assert_one_line_error(invoke("export", "--model", path, *args), fragment)


# ----------------------------------------------------------------------------------- predict


def test_onnx_and_torch_give_the_same_answers_and_warnings(model: Path, model_onnx: Path,
                                                           letters: list[Path]) -> None:
    runs = {}
    for name, args in {"onnx": ["--model", model_onnx], "torch": ["--model", model],
                       "forced torch": ["--model", model, "--backend", "torch"]}.items():
        result = invoke("predict", *letters, *args, "--top-k", "3", "--json")
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(result.stdout)
    assert "ONNX Runtime" in runs["onnx"][0]["model"]
    assert runs["torch"][0]["model"].endswith(", torch)")
    assert [row.get("warning") for row in runs["onnx"]][-2:] == [
        row.get("warning") for row in runs["torch"]][-2:]
    assert "almost uniform" in runs["onnx"][-2]["warning"]
    assert "almost empty" in runs["onnx"][-1]["warning"]
    for onnx_row, torch_row in zip(runs["onnx"], runs["torch"], strict=True):
        assert onnx_row["prediction"] == torch_row["prediction"]
        assert onnx_row.get("warning") == torch_row.get("warning")
        for ours, theirs in zip(onnx_row["top_k"], torch_row["top_k"], strict=True):
            assert abs(ours["probability"] - theirs["probability"]) <= 1e-4


def test_the_model_line_names_the_backend(model: Path, model_onnx: Path,
                                          letters: list[Path]) -> None:
    result = invoke("predict", letters[0], "--model", model_onnx)
    assert result.exit_code == 0, result.output
    assert f"Model: {model_onnx} (charrec {__version__}, mlp" in result.stderr
    assert result.stderr.rstrip().endswith(", ONNX Runtime)")


def test_the_reader_reads_paths_and_pil_images(model_onnx: Path, letters: list[Path]) -> None:
    reader = load_reader(model_onnx)
    assert reader.backend == "onnx" and reader.classes == list(CLASSES)
    from_paths, failures = reader.predict_images(letters[:3])
    from_images, _ = reader.predict_images([Image.open(path) for path in letters[:3]])
    assert not failures
    assert [p.letter for p in from_paths] == [p.letter for p in from_images]
    assert [p.path for p in from_paths] == [str(path) for path in letters[:3]]


def test_backend_choices_that_cannot_be_are_one_line(model: Path, model_onnx: Path,
                                                     letters: list[Path]) -> None:
    assert_one_line_error(invoke("predict", letters[0], "--model", model_onnx, "--backend",
                                 "torch"), "ONNX model", "--backend torch")
    assert_one_line_error(invoke("predict", letters[0], "--model", model, "--backend", "onnx"),
                          "no ONNX form", "charrec export")
    assert_one_line_error(invoke("predict", letters[0], "--backend", "cuda"), "unknown backend")


def test_without_onnxruntime_auto_falls_back_to_torch(model: Path, model_onnx: Path,
                                                      letters: list[Path], monkeypatch) -> None:
    """A bundled model with both forms (tiny.pth and tiny.onnx beside it) runs on ONNX Runtime,
    and on torch where onnxruntime is missing; a .onnx file then needs it."""
    monkeypatch.setattr(resolve, "bundled_resource", lambda: model)
    assert model_onnx == model.with_suffix(".onnx")
    result = invoke("predict", letters[0], "--model", "bundled")
    assert result.exit_code == 0 and result.stderr.rstrip().endswith(", ONNX Runtime)")
    monkeypatch.setattr("charrec.onnx_model.onnxruntime_available", lambda: False)
    result = invoke("predict", letters[0], "--model", "bundled")
    assert result.exit_code == 0, result.output
    assert result.stderr.rstrip().endswith(", torch)")
    assert_one_line_error(invoke("predict", letters[0], "--model", model_onnx),
                          "pip install onnxruntime")


def _charrec_in_a_fresh_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `charrec ARGS` in a new Python and print whether torch was imported."""
    script = ("import sys\n"
              "from charrec.__main__ import main\n"
              f"sys.argv = ['charrec', *{[str(arg) for arg in args]!r}]\n"
              "try:\n    main()\nexcept SystemExit as exit_:\n    code = exit_.code\n"
              "print('torch imported:', 'torch' in sys.modules, 'exit', code)\n")
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def test_predict_with_the_bundled_model_never_imports_torch(tmp_path: Path,
                                                            letters: list[Path]) -> None:
    result = _charrec_in_a_fresh_process(["predict", letters[0], letters[5]], tmp_path)
    assert "torch imported: False exit 0" in result.stdout, result.stdout + result.stderr
    assert "ONNX Runtime)" in result.stderr
    # the same run on torch does import it (so the check above can fail)
    result = _charrec_in_a_fresh_process(["predict", letters[0], "--backend", "torch"], tmp_path)
    assert "torch imported: True exit 0" in result.stdout, result.stdout + result.stderr


def test_test_with_the_bundled_model_never_imports_torch(tmp_path: Path,
                                                         folder_dataset: Path) -> None:
    result = _charrec_in_a_fresh_process(["test", "--data-dir", folder_dataset, "--plot",
                                          tmp_path / "confusion.png", "--json"], tmp_path)
    assert "torch imported: False exit 0" in result.stdout, result.stdout + result.stderr
    summary = json.loads(result.stdout[:result.stdout.rindex("torch imported")])
    assert summary["backend"] == "onnx" and summary["n_images"] == 26 * 4


# ------------------------------------------------------------------------------- bundled


def test_the_bundled_onnx_agrees_with_the_bundled_checkpoint() -> None:
    checkpoint = bundled_path()
    onnx_path = checkpoint.with_suffix(".onnx")
    assert checkpoint.stat().st_size + onnx_path.stat().st_size < 5 * 1024 * 1024
    network, config, stored = load_model(checkpoint)
    model = load_onnx(onnx_path)
    assert model.classes == stored["classes"] and model.norm_size == config.norm_size
    assert model.metadata["config"] == stored["config"]
    rng = random.Random(0)
    drawn = np.stack([np.asarray(draw_letter(letter, rng).resize(config.norm_size[::-1]),
                                 dtype=np.float32) / 127.5 - 1 for letter in CLASSES])
    images = np.concatenate([export.check_images(config), drawn[:, None]]).astype(np.float32)
    ours = predict_logits(network, torch.from_numpy(images)).numpy()
    theirs = model.logits(images)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    assert (theirs.argmax(axis=1) == ours.argmax(axis=1)).all()


# ------------------------------------------------------------------------------ bad files


def _graph_model(path: Path, input_shape, output_shape, domain: str = "",
                 metadata: dict[str, str] | None = None, external: bool = False) -> Path:
    """A small ONNX model: Flatten then MatMul by a weight matrix (optionally a custom op)."""
    features = int(np.prod(input_shape[1:]))
    weight = onnx.numpy_helper.from_array(
        np.ones((features, output_shape[1]), dtype=np.float32), name="W")
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("MatMul" if not domain else "Mystery", ["flat", "W"], ["logits"],
                              domain=domain)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, output_shape)],
        initializer=[weight])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    default = {"classes": json.dumps(list(CLASSES)), "norm_size": "[16, 16]"}
    helper.set_model_props(model, default if metadata is None else metadata)
    onnx.save_model(model, path, save_as_external_data=external, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=0)
    return path


BAD_MODELS = {
    "garbage": (lambda d: (d.joinpath("m.onnx").write_bytes(b"\x08\x07garbage" * 50),
                           d / "m.onnx")[1], "not a readable ONNX model"),
    "truncated": (lambda d: _truncated(d), "not a readable ONNX model"),
    "empty": (lambda d: (d.joinpath("m.onnx").write_bytes(b""), d / "m.onnx")[1],
              "empty file"),
    "three channels": (lambda d: _graph_model(d / "m.onnx", ["N", 3, 16, 16], ["N", 26]),
                       "charrec models take one float32 image [N, 1, 16, 16]"),
    "fixed batch": (lambda d: _graph_model(d / "m.onnx", [1, 1, 16, 16], [1, 26]),
                    "(any N)"),
    "ten outputs": (lambda d: _graph_model(d / "m.onnx", ["N", 1, 16, 16], ["N", 10]),
                    "logits [N, 26]"),
    "no metadata": (lambda d: _graph_model(d / "m.onnx", ["N", 1, 16, 16], ["N", 26],
                                           metadata={}), "not a charrec ONNX model"),
    "bad classes": (lambda d: _graph_model(d / "m.onnx", ["N", 1, 16, 16], ["N", 26],
                                           metadata={"classes": "[1, 2]", "norm_size": "[16, 16]"}),
                    "`classes` metadata"),
    "external data": (lambda d: _graph_model(d / "m.onnx", ["N", 1, 16, 16], ["N", 26],
                                             external=True), "external data"),
    "custom operator": (lambda d: _graph_model(d / "m.onnx", ["N", 1, 16, 16], ["N", 26],
                                               domain="com.example.letters"),
                        "custom operator"),
    "missing": (lambda d: d / "nowhere.onnx", "ONNX model not found"),
}


def _truncated(folder: Path) -> Path:
    path = _graph_model(folder / "m.onnx", ["N", 1, 16, 16], ["N", 26])
    path.write_bytes(path.read_bytes()[:150])
    return path


@pytest.mark.parametrize("kind", list(BAD_MODELS))
@pytest.mark.parametrize("command", ["predict", "test"])
def test_a_bad_onnx_file_is_one_line(tmp_path: Path, letters: list[Path], kind: str,
                                     command: str) -> None:
    make, fragment = BAD_MODELS[kind]
    path = make(tmp_path)
    args = [letters[0]] if command == "predict" else []
    assert_one_line_error(invoke(command, *args, "--model", path), fragment)


def test_a_good_hand_made_onnx_model_is_read(tmp_path: Path, letters: list[Path]) -> None:
    path = _graph_model(tmp_path / "m.onnx", ["N", 1, 16, 16], ["N", 26])
    result = invoke("predict", letters[0], "--model", path)
    assert result.exit_code == 0, result.output


def test_an_onnx_file_where_a_checkpoint_is_needed(model_onnx: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("train", "--resume", model_onnx), "is an ONNX model",
                          "checkpoint (.pth)")
    assert_one_line_error(invoke("export", "--model", model_onnx, "--out", tmp_path / "x.onnx"),
                          "ONNX model already")
    assert_one_line_error(invoke("summary", "--model", model_onnx), "is an ONNX model")
