"""Training batches of one epoch, in shuffled order, augmented one batch ahead in a helper thread.

Augmenting a batch (`charrec.data.augment`) costs about a third of a training step of the
default MLP, and training uses one torch thread, so on a machine with a second core that core
sits idle. Here batch k+1 is augmented by one helper thread while the caller trains on batch k:
torch releases the interpreter lock inside its kernels, so the two overlap. The batches, and
the random numbers each one draws, are exactly those of augmenting each batch in turn (one
thread draws from the generator, batch after batch), so a seeded run gives the same weights
either way and a resumed run continues exactly. Without augmentation there is no thread.

What the batches are used for (models, losses, optimizers) does not belong here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Rehearsal:
    """Extra images added to every batch after the epoch's own, drawn at random (fine-tuning
    mixes built-in letters into the user's, so the model keeps reading them)."""

    images: torch.Tensor  # [M, H, W], on the training device
    labels: torch.Tensor  # [M]
    per_batch: int


def training_batches(images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor,
                     batch_size: int, augment: Augment | None, generator: torch.Generator,
                     rehearsal: Rehearsal | None = None
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of each batch of `order` (indices into `images`), then `rehearsal`'s
    images if given (drawn with `generator`), augmented with `generator` when `augment` is
    given. Close the iterator (or exhaust it) to stop its thread; an interrupted epoch waits
    only for the batch in progress (about a millisecond)."""
    starts = range(0, len(order), batch_size)

    def batch(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = order[start:start + batch_size]
        chosen, chosen_labels = images[index], labels[index]
        if rehearsal is not None and rehearsal.per_batch:
            extra = torch.randint(len(rehearsal.images), (rehearsal.per_batch,),
                                  generator=generator, device=generator.device)
            extra = extra.to(rehearsal.images.device)
            chosen = torch.cat([chosen, rehearsal.images[extra]])
            chosen_labels = torch.cat([chosen_labels, rehearsal.labels[extra]])
        return (chosen if augment is None else augment(chosen, generator)), chosen_labels

    if augment is None or len(starts) < 2:
        yield from (batch(start) for start in starts)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="charrec-augment") as pool:
        pending: Future = pool.submit(batch, starts[0])
        try:
            for start in starts[1:]:
                ready = pending.result()
                pending = pool.submit(batch, start)
                yield ready
            yield pending.result()
        finally:
            pending.cancel()  # one not started yet is dropped; one running is waited for
