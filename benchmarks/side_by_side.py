"""Shared by the speed benchmarks: one model + loss + Adam timed an epoch at a time, so two
contenders can be run alternately on the same data in one process."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


class Trainer:
    """One model + loss + Adam; `epoch(order)` runs one pass of training steps. The loss of a
    batch is `loss_fn(model(images), labels)`, or `batch_loss(images, labels)` when given (a
    contender whose model and loss run as one, as charrec's training step does).

    A step is charrec's (`charrec.train.train_epoch`): zero_grad, loss, backward, optimizer step.
    (Where zero_grad goes does not matter to torch's layers, which make their gradients in
    backward; charrec's fused MLP makes them in forward, where dropping the old ones first lets
    the new ones reuse their memory.)"""

    def __init__(self, model: nn.Module, loss_fn: Callable, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, lr: float = 1e-3,
                 batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                 ) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.batch_loss = batch_loss or (lambda images, labels: loss_fn(model(images), labels))
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(self, index: torch.Tensor) -> float:
        """CPU seconds of this thread for one training step on the images at `index` (with one
        torch thread, the work itself; the loss is read, so the step is finished)."""
        started = time.thread_time()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.batch_loss(self.images[index], self.labels[index])
        loss.backward()
        self.optimizer.step()
        loss.item()
        return time.thread_time() - started

    def epoch(self, order: torch.Tensor) -> float:
        """Wall seconds for one epoch (the last batch's loss is read, so all work is finished);
        the CPU seconds of this thread for it go to `self.cpu_seconds` (less disturbed by other
        processes on a shared machine, exact with one torch thread)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        loss = torch.zeros(())
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.batch_loss(self.images[index], self.labels[index])
            loss.backward()
            self.optimizer.step()
        loss.item()
        self.cpu_seconds = time.thread_time() - cpu_started
        return time.perf_counter() - started
