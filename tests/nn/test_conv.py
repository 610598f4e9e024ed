"""Conv2d, MaxPool2d and Flatten against finite differences and torch's built-ins; the CNN
architecture; training, testing and predicting with `--arch cnn` through the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from typer.testing import CliRunner

from charrec.cli import app
from charrec.config import make_config
from charrec.errors import ConfigError
from charrec.nn import conv
from charrec.nn.conv import Conv2dFunction, FlattenFunction, MaxPool2dFunction
from charrec.nn.model import CNN, build_model
from charrec.tools.gradcheck import builtin_equivalent
from tests.helpers import count_parameters

runner = CliRunner()


def _random(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).requires_grad_()


# ---------------------------------------------------------------------------------- Conv2d


METHODS = ("columns", "correlate")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (1, 1), (5, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_gradcheck(kernel: tuple[int, int], with_bias: bool, method: str) -> None:
    x, weight = _random(2, 2, 5, 6, seed=1), _random(3, 2, *kernel, seed=2)
    bias = _random(3, seed=3) if with_bias else None
    assert gradcheck(lambda x, w, b: Conv2dFunction.apply(x, w, b, method), (x, weight, bias),
                     eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_matches_f_conv2d_same_padding(with_bias: bool, method: str) -> None:
    x, weight = _random(4, 3, 9, 7, seed=4), _random(5, 3, 3, 5, seed=5)
    bias = _random(5, seed=6) if with_bias else None
    inputs = [t for t in (x, weight, bias) if t is not None]
    ours = conv.conv2d(x, weight, bias, method)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(7),
                           dtype=torch.float64)
    reference = F.conv2d(x, weight, bias, padding="same")
    assert ours.shape == reference.shape == (4, 5, 9, 7)
    torch.testing.assert_close(ours, reference)
    for mine, theirs in zip(torch.autograd.grad(ours, inputs, upstream),
                            torch.autograd.grad(reference, inputs, upstream), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_conv2d_float32_matches_f_conv2d() -> None:
    x, weight, bias = (_random(8, 4, 16, 16, seed=8, dtype=torch.float32),
                       _random(6, 4, 3, 3, seed=9, dtype=torch.float32),
                       _random(6, seed=10, dtype=torch.float32))
    conv.conv2d(x, weight, bias).square().sum().backward()
    ours = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    F.conv2d(x, weight, bias, padding=1).square().sum().backward()
    for mine, t in zip(ours, (x, weight, bias), strict=True):
        torch.testing.assert_close(mine, t.grad, rtol=1e-4, atol=1e-3)


def test_auto_picks_columns_for_short_patches_and_correlation_for_long_ones() -> None:
    for channels, method in ((1, "columns"), (8, "correlate")):
        x, weight = torch.randn(2, channels, 6, 6), torch.randn(3, channels, 5, 5,
                                                               requires_grad=True)
        y = conv.conv2d(x, weight)
        assert y.grad_fn is not None
        torch.testing.assert_close(y, conv.conv2d(x, weight, method=method))
        assert (channels * 25 <= conv.COLUMNS_MAX) == (method == "columns")


def test_conv2d_skips_the_image_gradient_nobody_asked_for() -> None:
    images = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    weight = _random(2, 1, 3, 3, seed=11)
    conv.conv2d(images, weight).sum().backward()
    assert images.grad is None and weight.grad is not None


@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (1, 1), (3, 5)])
def test_im2col_and_col2im_equal_f_unfold_and_f_fold(kernel: tuple[int, int]) -> None:
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(16))
    padding = (kernel[0] // 2, kernel[1] // 2)
    columns = conv.im2col(x, kernel)
    assert torch.equal(columns, F.unfold(x, kernel, padding=padding))
    torch.testing.assert_close(conv.col2im(columns, x.shape, kernel),
                               F.fold(columns, (7, 6), kernel, padding=padding))


# ------------------------------------------------------------------------------- MaxPool2d


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5), (2, 1, 2, 2)])
def test_max_pool_gradcheck_and_matches_f_max_pool2d(shape: tuple[int, ...]) -> None:
    x = _random(*shape, seed=12)
    assert gradcheck(MaxPool2dFunction.apply, (x, 2), eps=1e-6, atol=1e-5)
    ours = conv.max_pool2d(x)
    reference = F.max_pool2d(x, 2)
    torch.testing.assert_close(ours, reference)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(13),
                           dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, x, upstream)[0],
                               torch.autograd.grad(reference, x, upstream)[0])


def test_max_pool_routes_gradient_only_to_the_maximum() -> None:
    x = torch.tensor([[[[1.0, 5.0, 0.0, 2.0],
                        [3.0, 4.0, 9.0, 1.0],
                        [7.0, 0.0, 1.0, 1.5],
                        [6.0, 2.0, 8.0, 3.0]]]], requires_grad=True)
    y = conv.max_pool2d(x)
    assert y.tolist() == [[[[5.0, 9.0], [7.0, 8.0]]]]
    y.backward(torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]]))
    assert x.grad.tolist() == [[[[0.0, 10.0, 0.0, 0.0],
                                 [0.0, 0.0, 20.0, 0.0],
                                 [30.0, 0.0, 0.0, 0.0],
                                 [0.0, 0.0, 40.0, 0.0]]]]


def test_max_pool_tie_sends_the_whole_gradient_to_one_position() -> None:
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    conv.max_pool2d(x).sum().backward()
    assert x.grad.sum().item() == 1.0 and (x.grad != 0).sum().item() == 1


def test_max_pool_drops_odd_edge_with_zero_gradient() -> None:
    x = _random(1, 1, 5, 5, seed=14)
    conv.max_pool2d(x).sum().backward()
    assert x.grad[..., 4, :].abs().sum() == 0 and x.grad[..., :, 4].abs().sum() == 0
    assert x.grad.sum().item() == 4.0


def test_flatten_gradcheck_and_shape() -> None:
    x = _random(2, 3, 2, 4, seed=15)
    assert gradcheck(FlattenFunction.apply, (x,), eps=1e-6, atol=1e-5)
    torch.testing.assert_close(conv.flatten(x), torch.flatten(x, 1))


# ------------------------------------------------------------------------------------- CNN


def test_cnn_from_config_layers_and_parameter_count() -> None:
    config = make_config({"arch": "cnn", "conv": "5x5x4,3x3x6", "norm_size": "16,12"})
    model = build_model(config, 26)
    assert isinstance(model, CNN)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2d", "MaxPool2d", "Activation", "Conv2d", "MaxPool2d", "Activation",
                     "Flatten", "Linear"]
    # (5*5*1*4 + 4) + (3*3*4*6 + 6) + (4*3*6 * 26 + 26)
    assert count_parameters(model) == 104 + 222 + 1898
    logits = model(torch.randn(3, 16, 12))
    assert logits.shape == (3, 26)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_pooling_before_the_activation_is_the_textbook_order(act: str) -> None:
    """conv -> pool -> act computes exactly conv -> act -> pool, values and gradients."""
    model = build_model(make_config({"arch": "cnn", "conv": "3x3x4,3x3x5", "act": act,
                                     "norm_size": "12,12"}), 26).double()
    images = _random(3, 12, 12, seed=20)
    textbook = [model.layers[index] for index in (0, 2, 1, 3, 5, 4, 6, 7)]
    assert [type(layer).__name__ for layer in textbook[:3]] == ["Conv2d", "Activation",
                                                                "MaxPool2d"]
    upstream = torch.randn(3, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = model(images)
    reference = torch.nn.Sequential(*textbook)(images.unsqueeze(1))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    parameters = [images, *model.parameters()]
    for mine, theirs in zip(torch.autograd.grad(ours, parameters, upstream),
                            torch.autograd.grad(reference, parameters, upstream), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_cnn_no_bias_has_no_bias_parameters() -> None:
    model = build_model(make_config({"arch": "cnn", "conv": "3x3x2", "bias": False,
                                     "norm_size": "8,8"}), 26)
    assert all("bias" not in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "none"])
def test_cnn_equals_its_torch_builtin_twin(act: str) -> None:
    torch.manual_seed(0)
    model = build_model(make_config({"arch": "cnn", "conv": "3x3x3,5x5x4", "act": act,
                                     "norm_size": "12,12"}), 26).double()
    twin = builtin_equivalent(model)
    images = torch.randn(5, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(model(images), twin(images))


def test_cnn_too_many_pools_for_the_image_is_a_config_error() -> None:
    config = make_config({"arch": "cnn", "conv": "3x3x2,3x3x2,3x3x2", "norm_size": "4,4"})
    with pytest.raises(ConfigError, match="fewer --conv layers or a larger --norm-size"):
        build_model(config, 26)


def test_cnn_rejects_images_with_other_channel_counts() -> None:
    model = CNN((8, 8), 26, ((3, 3, 2),), in_channels=3)
    with pytest.raises(ConfigError, match="3-channel images"):
        model(torch.randn(2, 8, 8))


@pytest.mark.parametrize("text", ["4x4x8", "3x3", "3x3x0", "axbxc", "3x3x8,", ""])
def test_bad_conv_option_is_a_config_error(text: str) -> None:
    if text == "3x3x8,":  # a trailing comma is harmless
        assert make_config({"conv": text}).conv == ((3, 3, 8),)
        return
    with pytest.raises(ConfigError, match="--conv expects"):
        make_config({"conv": text})


def test_conv_config_round_trips_through_a_plain_dict() -> None:
    config = make_config({"arch": "cnn", "conv": "5x5x20,3x3x30", "bias": "false"})
    values = config.to_dict()
    assert values["conv"] == [[5, 5, 20], [3, 3, 30]] and values["bias"] is False
    assert make_config(values) == config


# ----------------------------------------------------------------------------- through the CLI


def test_cli_train_cnn_then_test_and_predict_from_the_checkpoint(course_dataset, tmp_path
                                                                 ) -> None:
    out = tmp_path / "cnn.pth"
    result = runner.invoke(app, ["train", "--data-dir", str(course_dataset), "--arch", "cnn",
                                 "--conv", "3x3x8,3x3x16", "--no-bias", "--epochs", "8",
                                 "--lr", "0.005", "--batch-size", "32", "--no-augment",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Model: cnn 32×32×1 → 16×16×8 → 8×8×16 → 26" in result.output
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert checkpoint["config"]["arch"] == "cnn"
    assert checkpoint["config"]["conv"] == [[3, 3, 8], [3, 3, 16]]
    assert checkpoint["config"]["bias"] is False
    assert not any(name.endswith("bias") for name in checkpoint["state_dict"])

    tested = runner.invoke(app, ["test", "--model", str(out), "--json"])
    assert tested.exit_code == 0, tested.output
    summary = json.loads(tested.stdout)
    assert summary["n_images"] == 26 * 2  # the fixture puts 2 images per letter in test
    assert summary["accuracy"] > 0.3  # chance is 1/26

    image = next((course_dataset / "images").glob("*.png"))
    predicted = runner.invoke(app, ["predict", "--model", str(out), "--im-path", str(image),
                                    "--top-k", "3", "--json"])
    assert predicted.exit_code == 0, predicted.output
    (answer,) = json.loads(predicted.stdout)
    assert answer["prediction"] in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" and len(answer["top_k"]) == 3


def test_cli_train_with_colour_channels_is_one_clear_error(course_dataset, tmp_path) -> None:
    config_file = tmp_path / "colour.yaml"
    config_file.write_text("arch: cnn\nchannels: 3\nepochs: 1\n")
    result = runner.invoke(app, ["train", "--config", str(config_file), "--data-dir",
                                 str(course_dataset), "--out", str(tmp_path / "c.pth")])
    assert result.exit_code == 2  # a usage error
    assert "grayscale (1 channel)" in result.stderr
    assert "Traceback" not in result.output


def test_cli_sweep_over_conv_layouts(course_dataset, tmp_path) -> None:
    sweep_file = tmp_path / "convs.yaml"
    sweep_file.write_text("name: convs\nbase:\n  arch: cnn\n  epochs: 1\n  augment: false\n"
                          "grid:\n  conv: ['3x3x4', '5x5x4,3x3x8']\n")
    out_dir = tmp_path / "run"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--data-dir", str(course_dataset),
                                 "--out-dir", str(out_dir), "--threads", "1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(str(row["config"]["conv"]) for row in rows) == [
        "[[3, 3, 4]]", "[[5, 5, 4], [3, 3, 8]]"]
