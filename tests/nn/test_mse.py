"""The squared-error softmax loss (`--loss mse`): gradcheck, equality with torch autograd through
torch.softmax, the textbook gradient formula, and training/checkpoints through the CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from typer.testing import CliRunner

from charrec.cli import app
from charrec.nn import functions
from charrec.nn.functions import SoftmaxMSEFunction

runner = CliRunner()


def _logits(batch: int, classes: int, seed: int, scale: float = 2.0,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, classes, generator=generator, dtype=dtype) * scale
            ).requires_grad_()


def _targets(batch: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(seed))


def reference_mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Built from torch ops, differentiated by torch autograd."""
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return 0.5 * ((torch.softmax(logits, dim=1) - one_hot) ** 2).sum(dim=1).mean()


def test_softmax_mse_gradcheck() -> None:
    logits, targets = _logits(6, 5, seed=1), _targets(6, 5, seed=2)
    assert gradcheck(lambda z: SoftmaxMSEFunction.apply(z, targets), (logits,), eps=1e-6,
                     atol=1e-5)


def test_softmax_mse_gradcheck_through_upstream_gradient() -> None:
    logits, targets = _logits(4, 3, seed=3), _targets(4, 3, seed=4)
    assert gradcheck(lambda z: -2.5 * SoftmaxMSEFunction.apply(z, targets), (logits,), eps=1e-6,
                     atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_softmax_mse_matches_torch_autograd(dtype: torch.dtype) -> None:
    logits, targets = _logits(32, 26, seed=5, scale=4.0, dtype=dtype), _targets(32, 26, seed=6)
    ours = functions.softmax_mse(logits, targets)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    expected = reference_mse(logits, targets)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert ours.shape == expected.shape == ()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_grad, expected_grad)


def test_softmax_mse_gradient_is_the_textbook_formula() -> None:
    """dE/dnet_j = y_j (y_j - z_j) - y_j sum_m y_m (y_m - z_m), divided by the batch size."""
    logits, targets = _logits(3, 4, seed=7), _targets(3, 4, seed=8)
    (grad,) = torch.autograd.grad(functions.softmax_mse(logits, targets), logits)
    y = torch.softmax(logits.detach(), dim=1)
    for row in range(3):
        z = [1.0 if j == targets[row] else 0.0 for j in range(4)]
        inner = sum(y[row, m] * (y[row, m] - z[m]) for m in range(4))
        for j in range(4):
            expected = (y[row, j] * (y[row, j] - z[j]) - y[row, j] * inner) / 3
            assert grad[row, j].item() == pytest.approx(expected.item(), abs=1e-12)


def test_softmax_mse_value_is_half_squared_error() -> None:
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # softmax = (0.5, 0.5)
    targets = torch.tensor([0, 1])
    # per row: 1/2 * (0.5^2 + 0.5^2) = 0.25
    assert functions.softmax_mse(logits, targets).item() == pytest.approx(0.25)


def test_softmax_mse_finite_for_huge_logits() -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], requires_grad=True)
    loss = functions.softmax_mse(logits, torch.tensor([1, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(0.5)  # row 1 totally wrong (2 * 1/2), row 2 right


def test_softmax_mse_targets_get_no_gradient_and_g_is_untouched() -> None:
    logits, targets = _logits(5, 4, seed=9), _targets(5, 4, seed=10)
    loss = SoftmaxMSEFunction.apply(logits, targets)
    upstream = torch.tensor(1.0, dtype=torch.float64)
    grads = SoftmaxMSEFunction.backward(loss.grad_fn, upstream)
    assert len(grads) == 2 and grads[1] is None
    assert upstream.item() == 1.0


def test_train_with_mse_loss_is_stored_and_reloaded(course_dataset, tmp_path) -> None:
    out = tmp_path / "mse.pth"
    result = runner.invoke(app, ["train", "--data-dir", str(course_dataset), "--loss", "mse",
                                 "--hidden", "32", "--epochs", "3", "--lr", "0.01",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "loss=mse" in result.output
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert checkpoint["config"]["loss"] == "mse"
    tested = runner.invoke(app, ["test", "--model", str(out), "--json"])
    assert tested.exit_code == 0, tested.output


def test_unknown_loss_is_one_clear_error(course_dataset, tmp_path) -> None:
    result = runner.invoke(app, ["train", "--data-dir", str(course_dataset), "--loss", "l1",
                                 "--out", str(tmp_path / "x.pth")])
    assert result.exit_code == 2  # a usage error
    assert "--loss must be one of ce, mse" in result.output
    assert "Traceback" not in result.output
