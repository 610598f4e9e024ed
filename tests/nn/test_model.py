"""The MLP: layer counting, initialisation statistics, and that it is built from our Functions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from charrec.config import make_config
from charrec.errors import ConfigError
from charrec.nn import functions
from charrec.nn.layers import Activation, Linear
from charrec.nn.model import MLP, build_model
from tests.helpers import count_parameters


def _linears(model: nn.Module) -> list[Linear]:
    return [module for module in model.modules() if isinstance(module, Linear)]


def _activations(model: nn.Module) -> list[str]:
    return [module.name for module in model.modules() if isinstance(module, Activation)]


def test_layers_1_is_a_linear_classifier() -> None:
    model = build_model(make_config({"layers": 1}), 26)
    linears = _linears(model)
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(1024, 26)]
    assert _activations(model) == []
    assert count_parameters(model) == 1024 * 26 + 26


def test_layers_3_with_two_hidden_sizes() -> None:
    config = make_config({"layers": 3, "hidden": "256,128", "act": "tanh", "norm_size": "16,16"})
    model = build_model(config, 26)
    shapes = [(layer.in_features, layer.out_features) for layer in _linears(model)]
    assert shapes == [(256, 256), (256, 128), (128, 26)]
    assert _activations(model) == ["tanh", "tanh"]  # after each hidden layer, not the output
    assert model(torch.zeros(5, 16, 16)).shape == (5, 26)


def test_default_config_is_one_hidden_layer_of_256() -> None:
    shapes = [(layer.in_features, layer.out_features)
              for layer in _linears(build_model(make_config(), 26))]
    assert shapes == [(1024, 256), (256, 26)]


def test_one_hidden_width_is_repeated_for_deeper_networks() -> None:
    config = make_config({"layers": 4, "hidden": "64"})
    assert config.hidden == (64, 64, 64)


@pytest.mark.parametrize(("layers", "hidden", "expected"), [
    (3, "256", None),  # one width is repeated: no error
    (3, "256,128,64", "--layers 3 needs 2 hidden sizes"),
    (2, "64,32", "--layers 2 needs 1 hidden sizes"),
    (1, "64", "--layers 1 is a linear classifier"),
])
def test_layers_hidden_mismatch_is_a_clear_error(layers: int, hidden: str,
                                                 expected: str | None) -> None:
    if expected is None:
        make_config({"layers": layers, "hidden": hidden})
        return
    with pytest.raises(ConfigError, match=expected.replace("-", r"\-")) as error:
        make_config({"layers": layers, "hidden": hidden})
    assert "--hidden" in str(error.value)


def test_mlp_rejects_inconsistent_layer_count() -> None:
    with pytest.raises(ValueError, match="n_layers=3"):
        MLP(64, 26, (32,), n_layers=3)


def test_mlp_contains_no_nn_linear() -> None:
    model = MLP(64, 26, (32, 16), act="relu")
    assert not any(isinstance(module, nn.Linear) for module in model.modules())
    assert len(_linears(model)) == 3


def test_forward_and_backward_use_no_torch_builtin_layers(monkeypatch) -> None:
    """Training one step must not go through F.linear / F.cross_entropy / softmax."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a torch built-in layer was used inside the model or loss")

    for name in ("linear", "cross_entropy", "softmax", "log_softmax", "relu", "nll_loss"):
        monkeypatch.setattr(F, name, forbidden)
    model = MLP(64, 26, (32,), act="relu")
    logits = model(torch.randn(8, 8, 8))
    loss = functions.softmax_cross_entropy(logits, torch.arange(8))
    loss.backward()
    assert all(parameter.grad is not None for parameter in model.parameters())
    node_names = _graph_node_names(loss.grad_fn)
    assert "SoftmaxCrossEntropyFunctionBackward" in node_names
    assert "MLPFunctionBackward" in node_names  # Linear, ReLU, Linear fused (charrec.nn.fused)
    assert not any(name.startswith(("Addmm", "Mm", "Relu", "NllLoss", "LogSoftmax"))
                   for name in node_names), node_names


def _graph_node_names(node) -> set[str]:
    names, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current is None:
            continue
        names.add(type(current).__name__)
        stack += [next_node for next_node, _ in current.next_functions]
    return names


# ------------------------------------------------------------------------ initialisation


def _weights_std(layer: Linear) -> float:
    return layer.weight.detach().std().item()


@pytest.mark.parametrize(("act", "first_std"), [
    ("relu", math.sqrt(2 / 1024)),  # Kaiming: sqrt(2 / fan_in)
    ("sigmoid", math.sqrt(2 / (1024 + 256))),  # Xavier: sqrt(2 / (fan_in + fan_out))
    ("tanh", math.sqrt(2 / (1024 + 256))),
])
def test_default_init_is_scaled_by_fan_in(act: str, first_std: float) -> None:
    torch.manual_seed(0)
    hidden, output = _linears(MLP(1024, 26, (256,), act=act))
    # 262144 samples: the std estimate is within ~0.3% of the truth; 5% is a wide margin
    assert _weights_std(hidden) == pytest.approx(first_std, rel=0.05)
    assert hidden.weight.detach().mean().item() == pytest.approx(0.0, abs=first_std * 0.02)
    assert _weights_std(output) == pytest.approx(math.sqrt(2 / (256 + 26)), rel=0.05)
    assert torch.count_nonzero(hidden.bias) == 0 and torch.count_nonzero(output.bias) == 0


def test_kaiming_and_xavier_differ_measurably() -> None:
    """Guards against both branches silently giving the same scale."""
    torch.manual_seed(0)
    relu_std = _weights_std(_linears(MLP(1024, 26, (256,), act="relu"))[0])
    sigmoid_std = _weights_std(_linears(MLP(1024, 26, (256,), act="sigmoid"))[0])
    assert relu_std / sigmoid_std == pytest.approx(math.sqrt(1280 / 1024), rel=0.03)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_init_normal_is_standard_normal(act: str) -> None:
    torch.manual_seed(0)
    for layer in _linears(MLP(1024, 26, (256,), act=act, init="normal")):
        weight = layer.weight.detach()
        assert weight.std().item() == pytest.approx(1.0, rel=0.05)
        assert weight.mean().item() == pytest.approx(0.0, abs=0.05)
        assert layer.bias.detach().abs().max().item() > 0.5  # biases drawn from N(0, 1), too
    bias = torch.cat([layer.bias.detach() for layer in _linears(MLP(4, 4000, (), init="normal"))])
    assert bias.std().item() == pytest.approx(1.0, rel=0.1)


def test_init_via_config_flag() -> None:
    torch.manual_seed(0)
    model = build_model(make_config({"init": "normal", "act": "relu"}), 26)
    assert _weights_std(_linears(model)[0]) == pytest.approx(1.0, rel=0.05)


def test_linear_without_bias() -> None:
    layer = Linear(3, 2, bias=False)
    assert layer.bias is None and [name for name, _ in layer.named_parameters()] == ["weight"]
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight))


def test_mlp_matches_the_same_network_built_from_torch_layers() -> None:
    torch.manual_seed(0)
    ours = MLP(20, 5, (12, 7), act="sigmoid")
    reference = nn.Sequential(nn.Linear(20, 12), nn.Sigmoid(), nn.Linear(12, 7), nn.Sigmoid(),
                              nn.Linear(7, 5))
    with torch.no_grad():
        for mine, theirs in zip(_linears(ours), [m for m in reference if isinstance(m, nn.Linear)],
                                strict=True):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
    images = torch.randn(9, 4, 5)
    targets = torch.arange(9) % 5
    functions.softmax_cross_entropy(ours(images), targets).backward()
    F.cross_entropy(reference(images.reshape(9, -1)), targets).backward()
    torch.testing.assert_close(ours(images), reference(images.reshape(9, -1)))
    for mine, theirs in zip(_linears(ours), [m for m in reference if isinstance(m, nn.Linear)],
                            strict=True):
        torch.testing.assert_close(mine.weight.grad, theirs.weight.grad)
        torch.testing.assert_close(mine.bias.grad, theirs.bias.grad)
