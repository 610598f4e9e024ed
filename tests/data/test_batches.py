"""Batches augmented one ahead in a helper thread: the same batches, drawn in the same order,
as augmenting each in turn; and no thread left behind, however the epoch ends."""

from __future__ import annotations

import threading

import torch

from charrec.data.augment import augment_batch
from charrec.data.batches import training_batches


def data(count: int = 300):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 16, 16, generator=generator) * 2 - 1
    return images, torch.arange(count) % 26, torch.randperm(count, generator=generator)


def helper_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate()
            if thread.name.startswith("charrec-augment")]


def test_batches_are_those_of_augmenting_each_batch_in_turn():
    images, labels, order = data()
    generator = torch.Generator().manual_seed(5)
    batches = list(training_batches(images, labels, order, 64, augment_batch, generator))
    replay = torch.Generator().manual_seed(5)
    assert len(batches) == 5 and len(batches[-1][0]) == 300 - 4 * 64
    for number, (batch_images, batch_labels) in enumerate(batches):
        index = order[number * 64:(number + 1) * 64]
        assert torch.equal(batch_images, augment_batch(images[index], replay))
        assert torch.equal(batch_labels, labels[index])
    assert torch.equal(generator.get_state(), replay.get_state())  # nothing drawn beyond
    assert not helper_threads()


def test_without_augmentation_the_batches_are_the_images_and_no_thread_starts():
    images, labels, order = data(100)
    seen = []
    for batch_images, batch_labels in training_batches(images, labels, order, 32, None,
                                                       torch.Generator()):
        seen.append(batch_labels)
        assert not helper_threads()
        assert torch.equal(batch_images, images[order[32 * (len(seen) - 1):32 * len(seen)]])
    assert torch.equal(torch.cat(seen), labels[order])


def test_stopping_early_leaves_no_thread_running():
    images, labels, order = data()
    batches = training_batches(images, labels, order, 16, augment_batch, torch.Generator())
    next(batches)
    assert helper_threads()  # the next batch is being made
    batches.close()  # what an interrupted epoch does (train_epoch closes it)
    assert not helper_threads()


def test_an_error_in_the_training_step_stops_the_thread_too():
    images, labels, order = data()
    try:
        for _ in training_batches(images, labels, order, 16, augment_batch, torch.Generator()):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert not helper_threads()
