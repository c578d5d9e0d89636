"""`synth`: seeded, procedurally generated 3×32×32 images with a real train/test gap.

Each class has a few "modes" (prototype images); a sample is one of its class's
modes, randomly translated, with random contrast and colour, plus a large
class-independent smooth nuisance field and pixel noise. Classes of one superclass
share a superclass template (contiguous blocks: class c is in superclass
c * S // K), so superclass tasks are meaningful. A network fits the finite train
set perfectly but the nuisance makes unseen samples ambiguous, as on CIFAR.
Everything is drawn from numpy's PCG64 with the given seed (same bytes everywhere).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

TRAIN_STREAM, TEST_STREAM = 1, 2


def smooth_fields(rng: np.random.Generator, n: int, channels: int, size: int, grain: int):
    """n smooth random fields (n×C×size×size), unit-ish scale: bilinear upsampling of
    grain×grain Gaussian noise."""
    coarse = rng.standard_normal((n, channels, grain, grain))
    fields = zoom(coarse, (1, 1, size / grain, size / grain), order=1)
    return fields[:, :, :size, :size]


def superclass_of(num_classes: int, num_superclasses: int) -> np.ndarray:
    return np.arange(num_classes) * num_superclasses // num_classes


def generate(
    num_classes: int = 10,
    num_superclasses: int = 2,
    n_per_class: int = 100,
    seed: int = 0,
    stream: int = TRAIN_STREAM,
    image_size: int = 32,
    modes: int = 3,
    nuisance: float = 1.0,
    noise: float = 0.35,
    shift: int = 3,
):
    """(images uint8 N×3×S×S, labels int64 N), classes balanced and interleaved."""
    # Class structure depends on the seed only; samples also on the stream.
    structure = np.random.default_rng([seed, 0])
    supers = smooth_fields(structure, num_superclasses, 3, image_size, 4)
    protos = smooth_fields(structure, num_classes * modes, 3, image_size, 5)
    protos = protos.reshape(num_classes, modes, 3, image_size, image_size)
    protos = 0.7 * protos + 0.7 * supers[superclass_of(num_classes, num_superclasses)][:, None]

    rng = np.random.default_rng([seed, stream])
    n = num_classes * n_per_class
    labels = np.tile(np.arange(num_classes), n_per_class)
    mode = rng.integers(0, modes, n)
    x = protos[labels, mode]
    dx, dy = rng.integers(-shift, shift + 1, (2, n))
    rows = (np.arange(image_size)[None, :] - dy[:, None]) % image_size
    cols = (np.arange(image_size)[None, :] - dx[:, None]) % image_size
    x = x[
        np.arange(n)[:, None, None, None],
        np.arange(3)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    contrast = rng.uniform(0.6, 1.4, (n, 1, 1, 1))
    colour = rng.normal(0.0, 0.3, (n, 3, 1, 1))
    x = contrast * x + colour
    x += nuisance * smooth_fields(rng, n, 3, image_size, 6)
    x += noise * rng.standard_normal(x.shape)
    images = np.clip(128 + 45 * x, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
