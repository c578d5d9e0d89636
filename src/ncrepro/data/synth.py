"""`synth`: seeded, procedurally generated 3×32×32 images with a real train/test gap.

Design (all fields are periodic, smooth, low-frequency random fields):

* class structure (depends on `seed` only): every superclass has a template, every
  class a class pattern, and every class `modes` prototypes. Prototype (c, m) =
  `superclass_weight` · template[superclass(c)] + class pattern[c] + mode pattern[c, m],
  so classes of one superclass share structure and each class is multi-modal.
* a sample of class c (depends on `seed` and the split's stream): one of its class's
  prototypes, translated by up to `shift` pixels (wrapping around), with random
  contrast, per-channel gain and colour offset, plus a large class-independent smooth
  nuisance field and pixel noise, both scaled by `difficulty`.

A small CNN fits the finite train set perfectly but the nuisance makes unseen samples
ambiguous, so test accuracy stays clearly lower, as on CIFAR.

Superclasses are contiguous blocks: class c belongs to superclass
`c * num_superclasses // num_classes` (10 classes, 2 superclasses: 0-4 and 5-9).

Reproducibility: only numpy's PCG64 (seeded through SeedSequence) and element-wise
arithmetic (no BLAS, no reductions) feed the pixels, so the bytes are the same on
every machine. Train and test draw from the same distribution with different streams.
"""

from __future__ import annotations

import numpy as np

TRAIN_STREAM, TEST_STREAM = 1, 2
STREAMS = {"train": TRAIN_STREAM, "test": TEST_STREAM}


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """PCG64 generator for (seed, stream); stream 0 is the class structure."""
    if int(seed) < 0:
        raise ValueError(f"synth seed must be >= 0, not {seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), stream])))


def superclass_of(num_classes: int, num_superclasses: int) -> np.ndarray:
    """Superclass of every class: contiguous blocks, c * S // K."""
    if not 1 <= num_superclasses <= num_classes:
        raise ValueError(
            f"num_superclasses must be in 1..num_classes={num_classes}, not {num_superclasses}"
        )
    return np.arange(num_classes) * num_superclasses // num_classes


def superclass_groups(num_classes: int, num_superclasses: int) -> list[list[int]]:
    """Class ids of each superclass (the `mapping` argument of `relabel`)."""
    sup = superclass_of(num_classes, num_superclasses)
    return [np.flatnonzero(sup == s).tolist() for s in range(num_superclasses)]


def smooth_fields(
    rng: np.random.Generator, shape: tuple[int, ...], size: int, grain: int
) -> np.ndarray:
    """Periodic smooth random fields, shape (*shape, size, size): bilinear upsampling of
    a grain×grain grid of standard normals (element-wise arithmetic only)."""
    coarse = rng.standard_normal((*shape, grain, grain))
    pos = np.arange(size) * (grain / size)
    i0 = pos.astype(np.int64)
    w = pos - i0
    i1 = (i0 + 1) % grain
    rows = coarse[..., i0, :] * (1 - w)[:, None] + coarse[..., i1, :] * w[:, None]
    return rows[..., i0] * (1 - w) + rows[..., i1] * w


def generate(
    num_classes: int = 10,
    num_superclasses: int = 2,
    n_per_class: int = 100,
    seed: int = 0,
    stream: int = TRAIN_STREAM,
    *,
    modes: int = 4,
    superclass_weight: float = 0.8,
    shift: int = 4,
    difficulty: float = 1.0,
    nuisance: float = 1.0,
    noise: float = 0.4,
    image_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×3×S×S, labels int64 N); labels cycle 0..K-1 (balanced, interleaved)."""
    if num_classes < 2 or n_per_class < 0 or modes < 1 or shift < 0:
        raise ValueError("synth needs num_classes >= 2, n_per_class >= 0, modes >= 1, shift >= 0")
    size = image_size
    structure = rng_for(seed, 0)
    templates = smooth_fields(structure, (num_superclasses, 3), size, 4)
    patterns = smooth_fields(structure, (num_classes, 3), size, 5)
    mode_patterns = smooth_fields(structure, (num_classes, modes, 3), size, 6)
    sup = superclass_of(num_classes, num_superclasses)
    protos = superclass_weight * templates[sup][:, None] + patterns[:, None] + mode_patterns

    rng = rng_for(seed, stream)
    n = num_classes * n_per_class
    labels = np.tile(np.arange(num_classes, dtype=np.int64), n_per_class)
    mode = rng.integers(0, modes, n)
    dy, dx = rng.integers(-shift, shift + 1, (2, n))
    contrast = rng.uniform(0.6, 1.4, (n, 1, 1, 1))
    gain = rng.uniform(0.8, 1.2, (n, 3, 1, 1))
    offset = rng.normal(0.0, 0.3, (n, 3, 1, 1))
    clutter = smooth_fields(rng, (n, 3), size, 6)
    pixels = rng.standard_normal((n, 3, size, size))

    rows = (np.arange(size)[None, :] - dy[:, None]) % size
    cols = (np.arange(size)[None, :] - dx[:, None]) % size
    x = protos[
        labels[:, None, None, None],
        mode[:, None, None, None],
        np.arange(3)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    x = (contrast * gain) * x + offset
    x += (difficulty * nuisance) * clutter
    x += (difficulty * noise) * pixels
    images = np.clip(np.rint(128.0 + 36.0 * x), 0, 255).astype(np.uint8)
    return images, labels
