"""A Kohonen self-organising map (SOM) of letter images, and its use as a classifier.

The map is a rows x cols grid of units j, each with a weight vector w_j (a prototype image,
flattened). Weights start uniformly random in [-1, 1] (the range of preprocessed images). Each
training image x, in a shuffled order every epoch, moves the map towards itself:

    d_j  = sqrt(sum_i (x_i - w_ij)^2)                distance to every unit
    j*   = argmin_j d_j                              the winner
    h_j  = exp(-||r_j - r_j*||^2 / sigma^2)           r_j = the unit's (row, column) on the grid
    w_j += eta * h_j * (x - w_j)                     every unit, weighted by its neighbourhood

with eta and sigma shrinking geometrically over all steps t of training, from `lr` to
lr * LR_END_FRACTION and from `sigma` to SIGMA_END. Training stops after `epochs`, or earlier
when an epoch changes no weight by more than `tol`. `update` is that rule for one image.

Vectorised over units, always. Batched over inputs only where the result stays exact: the rule
is sequential (each winner depends on the weights every earlier image left), so `train_som`
takes a block of k images at once and keeps, per unit, w_j(t) = c_j w_j(0) + sum_s b_js x_s:
a combination of the block's start and its images. Then x_t . w_j(t) = c_j x_t.w_j(0) + sum_s
b_js x_t.x_s comes from two matrix products made once per block (X W(0)^T and X X^T), and
||w_j||^2 is updated from the same dot product, so each step costs O(units x k) instead of
O(units x pixels), with the same winners and weights as the one-at-a-time rule (tested against
a naive loop). Quantisation error, winners and classification use fixed weights and are
batched over all images.

As a classifier, each unit is labelled with the majority letter of the training images it wins;
an image gets the label of its nearest labelled unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from charrec.errors import ConfigError

LR_END_FRACTION = 0.01
SIGMA_END = 0.5
BLOCK_SIZE = 128
MONITOR_IMAGES = 2000  # quantisation error per epoch is measured on this many training images
UNLABELLED = -1


@dataclass(frozen=True)
class SOMConfig:
    grid: tuple[int, int] = (12, 12)
    epochs: int = 20
    lr: float = 0.5
    sigma: float | None = None  # default: half the longer side of the grid
    tol: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.grid) != 2 or min(self.grid) < 1 or self.grid[0] * self.grid[1] < 2:
            raise ConfigError(f"--grid must be ROWSxCOLS with at least 2 units, got {self.grid}")
        if not 0 < self.lr <= 1:
            raise ConfigError(f"--lr must be in (0, 1], got {self.lr}")
        if self.sigma is not None and self.sigma <= 0:
            raise ConfigError(f"--sigma must be greater than 0, got {self.sigma}")
        if self.tol < 0 or self.epochs < 1:
            raise ConfigError(f"--tol must be >= 0 and --epochs >= 1, got {self.tol}, "
                              f"{self.epochs}")

    @property
    def start_sigma(self) -> float:
        return self.sigma if self.sigma is not None else max(self.grid) / 2


@dataclass
class SOMResult:
    weights: np.ndarray  # [units, pixels], units in row-major grid order
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch


def parse_grid(text: str) -> tuple[int, int]:
    """'12x12' -> (12, 12)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        rows, cols = (int(part) for part in parts)
    except ValueError:
        raise ConfigError(f"--grid expects ROWSxCOLS, e.g. 12x12; got {text!r}") from None
    return rows, cols


# ------------------------------------------------------------------------- the rule, one image


def grid_positions(grid: tuple[int, int]) -> np.ndarray:
    """(row, column) of every unit, in row-major order: [units, 2]."""
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)


def grid_square_distances(grid: tuple[int, int]) -> np.ndarray:
    """||r_j - r_k||^2 between all pairs of units on the grid: [units, units]."""
    positions = grid_positions(grid)
    return ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(axis=2)


def distances(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """d_j = sqrt(sum_i (x_i - w_ij)^2) for every unit: [units]."""
    return np.sqrt(((x[None, :] - weights) ** 2).sum(axis=1))


def neighbourhood(square_distances_to_winner: np.ndarray, sigma: float) -> np.ndarray:
    """h_j = exp(-||r_j - r_j*||^2 / sigma^2)."""
    return np.exp(-square_distances_to_winner / sigma**2)


def update(weights: np.ndarray, x: np.ndarray, lr: float, sigma: float,
           grid_distances: np.ndarray) -> int:
    """One step of the rule for image x, in place: w_j += lr h_j (x - w_j). Returns j*."""
    winner = int(np.argmin(distances(x, weights)))
    step = lr * neighbourhood(grid_distances[winner], sigma)
    weights += step[:, None] * (x[None, :] - weights)
    return winner


def schedule(start: float, end: float, steps: np.ndarray, total_steps: int) -> np.ndarray:
    """Geometric decay from `start` (step 0) towards `end` (step total_steps), per step."""
    return start * (end / start) ** (steps / max(total_steps, 1))


# -------------------------------------------------------------- the rule, a block at a time


def _matmul(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """first @ second by torch, so that `single_thread` governs it (numpy's BLAS threads would
    keep spinning between products and starve the sequential per-image loop)."""
    import torch

    return (torch.from_numpy(first) @ torch.from_numpy(second)).numpy()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the rule is sequential and each step's work is small, and on a
    busy machine waking (and spinning) a second thread for each product costs more than it
    saves (docs/benchmarks.md)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)



def _train_block(weights: np.ndarray, block: np.ndarray, lrs: np.ndarray, sigmas: np.ndarray,
                 grid_distances: np.ndarray) -> np.ndarray:
    """The rule applied to the images of `block` in order, exactly, from `weights` -> new
    weights. See the module docstring for the bookkeeping; all of it is float64."""
    n_units, size = weights.shape[0], len(block)
    start_dots = _matmul(block, weights.T)  # x_t . w_j(0): [k, units]
    gram = _matmul(block, block.T)  # x_t . x_s: [k, k]
    square_norms = (weights * weights).sum(axis=1)  # ||w_j(t)||^2, kept up to date
    keep = np.ones(n_units)  # c_j
    mix = np.zeros((n_units, size))  # b_js
    for t in range(size):
        dots = keep * start_dots[t] + mix[:, :t] @ gram[:t, t]  # x_t . w_j(t)
        square_distances = gram[t, t] - 2 * dots + square_norms
        winner = int(np.argmin(square_distances))
        rate = lrs[t] * neighbourhood(grid_distances[winner], sigmas[t])  # eta h_j
        # w_j <- (1 - a) w_j + a x_t, with a = eta h_j:
        square_norms = ((1 - rate) ** 2 * square_norms + 2 * rate * (1 - rate) * dots
                        + rate**2 * gram[t, t])
        mix[:, :t] *= (1 - rate)[:, None]
        mix[:, t] = rate
        keep *= 1 - rate
    return keep[:, None] * weights + _matmul(mix, block)


@single_thread()
def train_som(images: np.ndarray, config: SOMConfig,
              on_epoch: Callable[[dict[str, float]], None] | None = None) -> SOMResult:
    """Train a map on `images` [N, pixels] (float, in [-1, 1]); see the module docstring."""
    rng = np.random.default_rng(config.seed)
    n_units = config.grid[0] * config.grid[1]
    weights = rng.uniform(-1.0, 1.0, size=(n_units, images.shape[1]))
    grid_distances = grid_square_distances(config.grid)
    monitor = images[rng.permutation(len(images))[:MONITOR_IMAGES]]
    total_steps = config.epochs * len(images)
    history, epoch, stopped_early = [], 0, False
    for epoch in range(1, config.epochs + 1):
        before = weights.copy()
        order = rng.permutation(len(images))
        first_step = (epoch - 1) * len(images)
        steps = np.arange(first_step, first_step + len(images))
        lrs = schedule(config.lr, config.lr * LR_END_FRACTION, steps, total_steps)
        sigmas = schedule(config.start_sigma, SIGMA_END, steps, total_steps)
        for start in range(0, len(images), BLOCK_SIZE):
            chunk = slice(start, start + BLOCK_SIZE)
            weights = _train_block(weights, images[order[chunk]].astype(np.float64),
                                   lrs[chunk], sigmas[chunk], grid_distances)
        change = float(np.abs(weights - before).max())
        row = {"epoch": epoch, "lr": float(lrs[-1]), "sigma": float(sigmas[-1]),
               "max_weight_change": change,
               "quantisation_error": quantisation_error(monitor, weights)}
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if change < config.tol:
            stopped_early = epoch < config.epochs
            break
    return SOMResult(weights, epoch, stopped_early, history)


# ----------------------------------------------------------- fixed weights: batched over images


@single_thread()
def square_distances_to_units(images: np.ndarray, weights: np.ndarray,
                              chunk: int = 4096) -> np.ndarray:
    """||x - w_j||^2 for every image and unit, as ||x||^2 - 2 x.w_j + ||w_j||^2: [N, units]."""
    weight_norms = (weights * weights).sum(axis=1)
    parts = []
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].astype(np.float64)
        parts.append((block * block).sum(axis=1)[:, None] - 2 * _matmul(block, weights.T)
                     + weight_norms[None, :])
    result = np.concatenate(parts) if parts else np.zeros((0, len(weights)))
    return np.maximum(result, 0.0)  # rounding can make an exact 0 slightly negative


def winners(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The winning unit of every image: [N]."""
    return square_distances_to_units(images, weights).argmin(axis=1)


def quantisation_error(images: np.ndarray, weights: np.ndarray) -> float:
    """Mean distance from each image to its winning unit's prototype."""
    if len(images) == 0:
        return 0.0
    return float(np.sqrt(square_distances_to_units(images, weights).min(axis=1)).mean())


def label_units(images: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                n_classes: int) -> np.ndarray:
    """Majority class of the images each unit wins (ties: the lower class index), or
    UNLABELLED for a unit that wins none: [units]."""
    votes = np.zeros((len(weights), n_classes), dtype=np.int64)
    np.add.at(votes, (winners(images, weights), labels), 1)
    unit_labels = votes.argmax(axis=1)
    unit_labels[votes.sum(axis=1) == 0] = UNLABELLED
    return unit_labels


def classify(images: np.ndarray, weights: np.ndarray, unit_labels: np.ndarray) -> np.ndarray:
    """Class of each image: the label of its nearest labelled unit."""
    labelled = np.flatnonzero(unit_labels != UNLABELLED)
    if len(labelled) == 0:
        raise ValueError("no unit has a label")
    nearest = square_distances_to_units(images, weights[labelled]).argmin(axis=1)
    return unit_labels[labelled][nearest]


# ------------------------------------------------------------------------ train + evaluate


@dataclass
class SOMReport:
    result: SOMResult
    unit_labels: np.ndarray  # [units], UNLABELLED for units that win no training image
    quantisation_error: float  # on the training images
    test_accuracy: float
    n_test: int


def fit_and_evaluate(train_images: np.ndarray, train_labels: np.ndarray,
                     test_images: np.ndarray, test_labels: np.ndarray, config: SOMConfig,
                     n_classes: int, max_images: int | None = None,
                     on_epoch: Callable[[dict[str, float]], None] | None = None) -> SOMReport:
    """Train on (at most `max_images`, a seeded random subset of) the training images; label
    the units with all of them; classify the test images."""
    fit_images = train_images
    if max_images is not None and len(train_images) > max_images:
        chosen = np.random.default_rng(config.seed).permutation(len(train_images))[:max_images]
        fit_images = train_images[np.sort(chosen)]
    result = train_som(fit_images, config, on_epoch)
    unit_labels = label_units(train_images, train_labels, result.weights, n_classes)
    predictions = classify(test_images, result.weights, unit_labels)
    accuracy = float((predictions == test_labels).mean()) if len(test_labels) else 0.0
    return SOMReport(result, unit_labels, quantisation_error(train_images, result.weights),
                     accuracy, len(test_labels))
