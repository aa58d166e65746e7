"""The course's augmentation generators, ``create_generator`` and ``image_mask_generator``, always aligned.

The course built two ``ImageDataGenerator.flow`` iterators, one over the images and one over the masks, and zipped
them, trusting a shared seed to give both the same shuffling and the same random transforms. With ``seed=None`` (the
course's default, and what its ``train_unet`` passed) the two streams were independent, so every mask was transformed
differently from its image; even with a seed, anything that drew random numbers in between broke the pairing.

labkit keeps the names and the calling pattern::

    image_gen, mask_gen = create_generator(x_train, y_train, ImageDataGenerator(rotation_range=10), 8)
    for images, masks in image_mask_generator(image_gen, mask_gen):
        ...

but both halves are views of **one** joint stream (`labkit.data.pipeline.array_dataset`: one shuffle, one random
affine transform per image applied to the image and its mask together, masks re-binarised at 0.5), so they stay
aligned whatever the seed and however they are consumed.
"""

from collections import deque

import numpy as np

from labkit.data.augment import is_image_data_generator, resolve_augment
from labkit.data.pipeline import array_dataset
from labkit.errors import require


class _JointStream:
    """Batches of one endless ``(images, masks)`` dataset, handed out to two consumers in the same order."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.reset()

    def reset(self):
        self._iterator = iter(self.dataset.as_numpy_iterator())
        self._queues = (deque(), deque())

    def next_part(self, part):
        """The next image batch (`part` 0) or mask batch (`part` 1); the other half is kept for its consumer."""
        queue = self._queues[part]
        if not queue:
            images, masks = next(self._iterator)
            self._queues[0].append(images)
            self._queues[1].append(masks)
        return queue.popleft()


class JointFlow:
    """One half (images or masks) of a `create_generator` pair; iterates like a Keras ``NumpyArrayIterator``.

    Attributes:
        n: number of samples (as Keras's iterator).
        batch_size: samples per batch.
        part: ``"image"`` or ``"mask"``.
        dataset: the joint `tf.data.Dataset` of ``(images, masks)`` batches both halves read.
    """

    def __init__(self, stream, part, n, batch_size):
        self._stream, self._index = stream, {"image": 0, "mask": 1}[part]
        self.part, self.n, self.batch_size = part, int(n), int(batch_size)
        self.dataset = stream.dataset

    def __iter__(self):
        return self

    def __next__(self):
        return self._stream.next_part(self._index)

    def next(self):
        """Keras 2's spelling of ``next(flow)``."""
        return next(self)

    def __len__(self):
        return -(-self.n // self.batch_size)  # batches per epoch, rounded up (as Keras's Iterator)


class GeneratorPair(tuple):
    """``(image_flow, mask_flow)`` from `create_generator`: unpack it (the course's way) or pass it whole to
    `train_unet(..., generator=...)` / ``Model.fit`` via its ``dataset``."""

    def __new__(cls, image_flow, mask_flow):
        pair = super().__new__(cls, (image_flow, mask_flow))
        pair.dataset = image_flow.dataset
        pair.n, pair.batch_size = image_flow.n, image_flow.batch_size
        return pair


def create_generator(image, mask, generator=None, batch_size=32, seed=None, *, augment=None):
    """The course's ``create_generator``: an image and a mask generator that always agree.

    Args:
        image, mask: arrays ``(n, h, w, c)`` and ``(n, h, w, 1)``.
        generator: a Keras ``ImageDataGenerator`` (its rotation, shift, zoom and flip settings are used; see
            `labkit.data.augment.image_data_generator_options`), a dict of those names, True (the course's Task 4e
            set) or None/False (no augmentation, only shuffling).
        batch_size: images per batch.
        seed: seed of shuffling and augmentation; None draws a fresh one. The two halves agree either way.
        augment: keyword alias of `generator` (labkit's earlier name).

    Returns:
        A `GeneratorPair` ``(image_flow, mask_flow)``: two endless iterators of float32 batches, the k-th image batch
        belonging with the k-th mask batch (masks in {0, 1}). Both halves read one joint stream, so the course's
        ``zip`` pairs them correctly; the course's pair, built from two unseeded ``ImageDataGenerator.flow`` calls,
        shuffled and transformed images and masks independently.

    Example:
        >>> image_gen, mask_gen = create_generator(x_train, y_train, ImageDataGenerator(rotation_range=10), 8)
        >>> images, masks = next(image_mask_generator(image_gen, mask_gen))
    """
    require(generator is None or augment is None, "give the augmentation as `generator` or `augment`, not both")
    options = resolve_augment(augment if generator is None else generator)
    image, mask = np.asarray(image), np.asarray(mask)
    require(image.ndim == 4 and mask.ndim == 4, f"create_generator needs 4-D arrays (n, h, w, channels), got images "
            f"{image.shape} and masks {mask.shape}; reshape with .reshape((-1, h, w, 1))")
    dataset = array_dataset(image, mask, batch_size, augment=options, shuffle=True, seed=seed, repeat=True)
    stream = _JointStream(dataset)
    return GeneratorPair(JointFlow(stream, "image", len(image), batch_size),
                         JointFlow(stream, "mask", len(mask), batch_size))


def image_mask_generator(image_generator, mask_generator):
    """The course's ``image_mask_generator``: yield ``(images, masks)`` batches from an image and a mask generator.

    Given the two halves of a `create_generator` pair, the batches are aligned by construction. Given two other
    iterators (e.g. the course's own ``ImageDataGenerator.flow`` calls) they are zipped as the course did; aligning
    those is then up to their seeds.

    Yields:
        ``(images, masks)`` NumPy batches, endlessly for `create_generator` halves.

    Example:
        >>> for images, masks in image_mask_generator(*create_generator(x, y, None, 4)):
        ...     break
    """
    if isinstance(image_generator, JointFlow) and isinstance(mask_generator, JointFlow):
        require(image_generator._stream is mask_generator._stream,
                "image_mask_generator got halves of two different create_generator calls: they are not aligned")
    for images, masks in zip(image_generator, mask_generator):
        yield images, masks


def training_stream(generator, images, masks, batch_size):
    """What `train_unet` fits on for its ``generator`` argument, and the steps per epoch.

    Accepts a Keras ``ImageDataGenerator`` / options dict / True (augmentation settings, applied jointly to
    `images` and `masks`), a `create_generator` pair or one of its halves, a `tf.data.Dataset`, or any iterator of
    ``(images, masks)`` batches (e.g. `image_mask_generator`). Steps per epoch are ``len(images) // batch_size``
    (at least 1), as the course.
    """
    steps = max(1, len(images) // int(batch_size))
    if generator is True or isinstance(generator, dict) or is_image_data_generator(generator):
        return array_dataset(images, masks, batch_size, augment=generator, shuffle=True, repeat=True), steps
    if isinstance(generator, (GeneratorPair, JointFlow)):
        return generator.dataset, steps
    return generator, steps


__all__ = ["GeneratorPair", "JointFlow", "create_generator", "image_mask_generator", "training_stream"]
