"""BatchNorm2d (our Function and layer) against finite differences and torch's built-ins; label
smoothing in the cross-entropy Function; a CNN with batch norm trains, saves and reloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from charrec.checkpoint import load_model
from charrec.config import make_config
from charrec.nn.batchnorm import BN_EPS, batch_norm2d
from charrec.nn.functions import loss_function, softmax_cross_entropy
from charrec.nn.layers import BatchNorm2d
from charrec.nn.model import build_model
from charrec.tools.gradcheck import builtin_equivalent
from tests.helpers import assert_one_line_error, invoke


def _random(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
            ).requires_grad_()


@pytest.mark.parametrize("running", [False, True])
def test_batch_norm_gradcheck_and_matches_torch(running: bool) -> None:
    x, gamma, beta = _random(4, 3, 5, 2, seed=1, scale=3.0), _random(3, seed=2), \
        _random(3, seed=3)
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64) if running else None
    var = torch.tensor([2.0, 0.3, 1.0], dtype=torch.float64) if running else None
    assert gradcheck(lambda *inputs: batch_norm2d(*inputs, mean, var)[0], (x, gamma, beta))
    ours = batch_norm2d(x, gamma, beta, mean, var)[0]
    theirs = F.batch_norm(x, mean, var, gamma, beta, training=not running, eps=BN_EPS)
    torch.testing.assert_close(ours, theirs)
    weights = _random(*ours.shape, seed=4).detach()
    ours_grads = torch.autograd.grad((ours * weights).sum(), (x, gamma, beta))
    their_grads = torch.autograd.grad((theirs * weights).sum(), (x, gamma, beta))
    for our_grad, their_grad in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(our_grad, their_grad)


def test_batch_norm_layer_running_statistics_match_torch() -> None:
    torch.manual_seed(0)
    ours, theirs = BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3, eps=BN_EPS).double()
    for step in range(4):
        x = torch.randn(6, 3, 4, 4, dtype=torch.float64) * (step + 1) + step
        torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    with torch.no_grad():  # the one-op path for reading letters, its affine map cached
        torch.testing.assert_close(ours(x), theirs(x))
        ours.running_mean.add_(1.0), theirs.running_mean.add_(1.0)  # a change is seen
        torch.testing.assert_close(ours(x), theirs(x))
        ours.load_state_dict(BatchNorm2d(3).double().state_dict())
        theirs.load_state_dict(torch.nn.BatchNorm2d(3).double().state_dict())
        torch.testing.assert_close(ours(x), theirs(x))


def test_cnn_with_batch_norm_equals_its_torch_twin_in_both_modes() -> None:
    config = make_config({"arch": "cnn", "conv": "3x3x4,3x3x6", "norm_size": "8,8",
                          "batch_norm": True})
    torch.manual_seed(1)
    model = build_model(config, 26).double()
    assert all(layer.bias is None for layer in model.layers if hasattr(layer, "kernel_size"))
    twin = builtin_equivalent(model).double()
    images = torch.randn(5, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(model(images), twin(images))  # training: batch statistics
    model.eval(), twin.eval()
    torch.testing.assert_close(model(images), twin(images))  # running statistics


def test_label_smoothing_matches_torch_and_zero_is_plain_cross_entropy() -> None:
    logits = _random(6, 26, seed=5, scale=3.0)
    targets = torch.randint(0, 26, (6,), generator=torch.Generator().manual_seed(6))
    assert gradcheck(lambda z: softmax_cross_entropy(z, targets, 0.2), (logits,))
    for smoothing in (0.0, 0.1, 0.3):
        ours = loss_function("ce", smoothing)(logits, targets)
        theirs = F.cross_entropy(logits, targets, label_smoothing=smoothing)
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(torch.autograd.grad(ours, logits)[0],
                                   torch.autograd.grad(theirs, logits)[0])


def test_train_with_batch_norm_and_smoothing_saves_a_model_that_reloads(
        course_dataset, tmp_path) -> None:
    config_file = tmp_path / "bn.yaml"
    config_file.write_text("arch: cnn\nconv: 3x3x4,3x3x8\nbatch_norm: true\n"
                           "label_smoothing: 0.1\n")
    out = tmp_path / "bn.pth"
    result = invoke("train", "--config", config_file, "--data-dir", course_dataset,
                    "--epochs", "1", "--batch-size", "16", "--out", out)
    assert result.exit_code == 0, result.output
    model, config, checkpoint = load_model(out)
    assert config.batch_norm and config.label_smoothing == 0.1
    assert "layers.2.running_mean" in checkpoint["state_dict"]
    assert any(isinstance(layer, BatchNorm2d) for layer in model.layers)


def test_label_smoothing_out_of_range_is_one_clear_line(tmp_path) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("label_smoothing: 0.9\n")
    assert_one_line_error(invoke("train", "--config", config_file, "--dry-run"),
                          "label-smoothing", "at most 0.5")


def test_train_flags_batch_norm_and_label_smoothing(course_dataset, tmp_path) -> None:
    result = invoke("train", "--data-dir", course_dataset, "--arch", "cnn", "--conv", "3x3x4",
                    "--batch-norm", "--label-smoothing", "0.05", "--dry-run")
    assert result.exit_code == 0, result.output
    assert_one_line_error(invoke("train", "--label-smoothing", "-0.1", "--dry-run"),
                          "label-smoothing", "at least 0")


def test_reading_folds_batch_norm_into_the_convolutions_with_the_same_outputs() -> None:
    config = make_config({"arch": "cnn", "conv": "3x3x4,3x3x6", "norm_size": "8,8",
                          "batch_norm": True})
    torch.manual_seed(2)
    model = build_model(config, 26).double()
    images = torch.randn(7, 8, 8, dtype=torch.float64)
    for _ in range(3):
        model(images * 2 + 1)  # training steps: running statistics away from 0 and 1
    model.eval()
    with torch.no_grad():
        norms = [layer for layer in model.layers if isinstance(layer, BatchNorm2d)]
        norms[1].weight[0] = -0.5  # a negative scale: that layer cannot be folded
        reference = model.layers(images.unsqueeze(1))  # layer by layer, batch norm as it is
        folded = model(images)
        assert sum(isinstance(layer, BatchNorm2d) for layer in model.reading_layers()) == 1
        torch.testing.assert_close(folded, reference)
        norms[1].weight[0] = 0.5  # all positive now: both fold, and the change is seen
        torch.testing.assert_close(model(images), model.layers(images.unsqueeze(1)))
        assert not any(isinstance(layer, BatchNorm2d) for layer in model.reading_layers())


@pytest.mark.parametrize("negative_scale", [False, True], ids=["folded", "BatchNormalization"])
def test_export_of_a_batch_norm_cnn_computes_the_same_logits(tmp_path, negative_scale) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from charrec.checkpoint import make_checkpoint, save_checkpoint
    from charrec.export import export_model

    config = make_config({"arch": "cnn", "conv": "3x3x4,3x3x6", "norm_size": "16,16",
                          "batch_norm": True})
    torch.manual_seed(3)
    network = build_model(config, 26)
    for _ in range(3):
        network(torch.randn(8, 16, 16) * 2 + 1)  # running statistics away from 0 and 1
    with torch.no_grad():
        network.layers[2].weight[1] = -0.7 if negative_scale else 0.7
    network.eval()
    metrics = {"best_val_accuracy": 0.5, "best_epoch": 1, "history": []}
    save_checkpoint(tmp_path / "m.pth", make_checkpoint(config, network.state_dict(), metrics))
    network, config, checkpoint = load_model(tmp_path / "m.pth")
    export_model(network, config, checkpoint, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    operators = {node.op_type for node in __import__("onnx").load(
        str(tmp_path / "m.onnx")).graph.node}
    assert ("BatchNormalization" in operators) == negative_scale
    images = np.random.default_rng(4).uniform(-1, 1, (5, 1, 16, 16)).astype(np.float32)
    theirs = session.run(["logits"], {"image": images})[0]
    with torch.no_grad():
        ours = network.layers(torch.from_numpy(images)).numpy()  # batch norm as it is
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
