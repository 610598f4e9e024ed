"""`charrec gradcheck`: every check passes on the real code, and a deliberately broken backward
makes the command fail (exit 1, the broken op marked FAIL)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from charrec.cli import app
from charrec.nn import conv, functions
from charrec.tools.gradcheck import MODEL_SPECS, Check, all_checks, model_check, run_checks

runner = CliRunner()


@pytest.fixture(scope="module")
def passing_run() -> list[dict]:
    result = runner.invoke(app, ["gradcheck", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_function_and_architecture_is_checked(passing_run) -> None:
    ops = [row["op"] for row in passing_run]
    for name in ("Linear", "relu", "sigmoid", "tanh", "softmax cross-entropy", "softmax MSE",
                 "Conv2d 3×3", "MaxPool2d 2×2/2", "Flatten", "MLP relu + ce, fused",
                 "MLP tanh + ce, fused"):
        assert name in ops
    for act in ("relu", "sigmoid", "tanh", "none"):
        for loss in ("ce", "mse"):
            assert f"MLP {act} + {loss}" in ops
    assert {"CNN relu + ce", "CNN relu + mse"} <= set(ops)


def test_all_checks_pass_with_small_errors(passing_run) -> None:
    for row in passing_run:
        assert row["passed"] and row["gradcheck_passed"], row
        assert row["numerical_error"] < 1e-6, row
        assert row["reference_diff"] < 1e-10, row


def test_run_checks_runs_just_the_given_checks() -> None:
    checks = [check for check in all_checks() if check.op in ("Linear", "Flatten")]
    results = run_checks(checks)
    assert [result.op for result in results] == ["Linear", "Flatten"]
    assert all(result.passed for result in results)


def _broken_max_pool_backward(ctx, g):
    """Spreads each window's gradient evenly instead of routing it to the maximum."""
    batch, channels, height, width = ctx.input_shape
    spread = g.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4
    return torch.nn.functional.pad(spread, (0, width - spread.shape[3],
                                            0, height - spread.shape[2])), None


def test_broken_max_pool_backward_fails_the_command(monkeypatch) -> None:
    monkeypatch.setattr(conv.MaxPool2dFunction, "backward", staticmethod(
        _broken_max_pool_backward))
    result = runner.invoke(app, ["gradcheck"])
    assert result.exit_code == 1
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert any("MaxPool2d" in line for line in failing)
    assert any("CNN relu + ce" in line for line in failing)  # the whole CNN is wrong too
    assert not any("MLP" in line for line in failing)
    assert "gradient check(s) failed" in result.stderr and "MaxPool2d" in result.stderr


def test_mse_backward_missing_its_second_term_is_caught(monkeypatch) -> None:
    """dE/dz_j = y_j (y_j - t_j) - y_j sum_m y_m (y_m - t_m): drop the sum and it must fail."""

    def incomplete(ctx, g):
        probabilities, error = ctx.saved_tensors
        return probabilities * error * (g / probabilities.shape[0]), None

    monkeypatch.setattr(functions.SoftmaxMSEFunction, "backward", staticmethod(incomplete))
    checks = [check for check in all_checks()
              if check.op in ("softmax MSE", "softmax cross-entropy", "MLP relu + mse")]
    verdicts = {result.op: result.passed for result in run_checks(checks)}
    assert verdicts == {"softmax cross-entropy": True, "softmax MSE": False,
                        "MLP relu + mse": False}


def test_a_forward_that_disagrees_with_torch_fails_even_with_consistent_gradients() -> None:
    """A self-consistent but wrong op (gradcheck passes) is caught by the torch comparison."""

    def make():
        x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        return (x.requires_grad_(),), lambda t: 2 * functions.activation("tanh", t), torch.tanh

    (result,) = run_checks([Check("2 tanh", "torch.tanh", make)])
    assert result.gradcheck_passed and not result.passed
    assert result.reference_diff > 0.1


def test_model_specs_cover_cnn_without_bias() -> None:
    names = [name for name, _ in MODEL_SPECS]
    assert any("no bias" in name for name in names)
    (result,) = run_checks([model_check(*next(spec for spec in MODEL_SPECS
                                               if "no bias" in spec[0]))])
    assert result.passed
