"""`synth`: seeded, procedurally generated 3×32×32 images with a real train/test gap.

Design (every "field" is a periodic, smooth, low-frequency random field: bilinear
upsampling of a coarse random grid, 4×4 or 8×8):

* class structure (depends on `seed` only): each superclass has a template, each class
  a pattern and `modes` mode patterns. Prototype (c, m) = `superclass_weight` ·
  template[superclass(c)] + pattern[c] + mode pattern[c, m]: classes of one superclass
  share structure, and each class is multi-modal.
* a sample of class c (depends on `seed` and the split's stream): one of its class's
  prototypes, translated by up to `shift` pixels (wrapping around), times a random
  contrast and per-channel gain, plus a colour offset, a large class-independent smooth
  nuisance field (std `nuisance` · `difficulty` relative to unit-scale fields) and
  pixel noise (`noise` · `difficulty`); then rescaled to a grey-level std of ~45
  around 128 and rounded to uint8.

With the defaults (difficulty 1), a tiny 2-layer CNN trained on 300 images per class
fits the train set (100 %) while test accuracy stays near 73 %: the nuisance makes
unseen samples ambiguous, as on CIFAR. `difficulty` 0 gives clean prototypes; ~0.67
gives ~90 % test accuracy.

Superclasses are contiguous blocks: class c belongs to superclass
`c * num_superclasses // num_classes` (10 classes, 2 superclasses: 0-4 and 5-9).

Reproducibility: numbers come only from numpy's PCG64 (seeded through SeedSequence)
as integers or uniform floats (exact conversions, no libm exp/log as in
`standard_normal`), combined by element-wise float32 numpy operations (IEEE-exact, no
BLAS, no reductions, no fused multiply-add): the same bytes on every machine. Train
and test draw from the same distribution with different streams.
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


def bell(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance float32 noise with a triangular (bell-like) density:
    the sum of two uniforms. Unlike `standard_normal` it uses no libm call (exp, log),
    so its bits cannot differ between platforms."""
    u = rng.random((2, *shape), dtype=np.float32)
    u = u[0] + u[1]
    u -= np.float32(1.0)
    u *= np.float32(np.sqrt(6.0))
    return u


def uniform(rng: np.random.Generator, low: float, high: float, shape) -> np.ndarray:
    """Uniform float32 on [low, high), scaled with numpy (no compiled fused multiply-add)."""
    u = rng.random(shape, dtype=np.float32)
    u *= np.float32(high - low)
    u += np.float32(low)
    return u


def smooth_fields(
    rng: np.random.Generator, shape: tuple[int, ...], size: int, grain: int
) -> np.ndarray:
    """Periodic smooth random fields, float32 (*shape, size, size): bilinear upsampling
    of a grain×grain grid of `bell` noise; `grain` must divide `size`."""
    if size % grain:
        raise ValueError(f"grain {grain} must divide the image size {size}")
    f = size // grain
    coarse = bell(rng, (*shape, grain, grain))
    w = (np.arange(f, dtype=np.float32) / f)[:, None]  # weight of the next coarse cell
    # rows: (..., grain, f, grain) -> (..., size, grain)
    rows = coarse[..., :, None, :] * (1 - w) + np.roll(coarse, -1, axis=-2)[..., :, None, :] * w
    rows = rows.reshape(*shape, size, grain)
    w = w[:, 0]
    fields = rows[..., :, :, None] * (1 - w) + np.roll(rows, -1, axis=-1)[..., :, :, None] * w
    return fields.reshape(*shape, size, size)


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
    nuisance: float = 3.0,
    noise: float = 1.2,
    image_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×3×S×S, labels int64 N); labels cycle 0..K-1 (balanced, interleaved)."""
    if num_classes < 2 or n_per_class < 0 or modes < 1 or not 0 <= shift < image_size:
        raise ValueError(
            "synth needs num_classes >= 2, n_per_class >= 0, modes >= 1, 0 <= shift < size"
        )
    if min(difficulty, nuisance, noise, superclass_weight) < 0:
        raise ValueError("synth difficulty, nuisance, noise, superclass_weight must be >= 0")
    size = image_size
    structure = rng_for(seed, 0)
    templates = smooth_fields(structure, (num_superclasses, 3), size, 4)
    patterns = smooth_fields(structure, (num_classes, 3), size, 4)
    mode_patterns = smooth_fields(structure, (num_classes, modes, 3), size, 8)
    sup = superclass_of(num_classes, num_superclasses)
    protos = np.float32(superclass_weight) * templates[sup][:, None] + patterns[:, None]
    protos = protos + mode_patterns  # (K, modes, 3, S, S)

    rng = rng_for(seed, stream)
    n = num_classes * n_per_class
    labels = np.tile(np.arange(num_classes, dtype=np.int64), n_per_class)
    mode = rng.integers(0, modes, n)
    offset_id = rng.integers(0, (2 * shift + 1) ** 2, n)
    contrast = uniform(rng, 0.6, 1.4, (n, 1, 1, 1))
    gain = uniform(rng, 0.8, 1.2, (n, 3, 1, 1))
    offset = np.float32(0.3) * bell(rng, (n, 3, 1, 1))
    clutter = smooth_fields(rng, (n, 3), size, 8)
    pixels = bell(rng, (n, 3, size, size))

    x = np.empty((n, 3, size, size), np.float32)
    for k in np.unique(offset_id):  # translate (with wrap-around), grouped by offset
        dy, dx = divmod(int(k), 2 * shift + 1)
        rows = np.flatnonzero(offset_id == k)
        x[rows] = np.roll(protos[labels[rows], mode[rows]], (dy - shift, dx - shift), (-2, -1))
    x *= contrast * gain
    x += offset
    clutter *= np.float32(difficulty * nuisance)
    x += clutter
    pixels *= np.float32(difficulty * noise)
    x += pixels
    # expected variance (bilinear fields have variance ~0.46): keeps the grey-level spread
    # ~45 whatever the difficulty; computed from the params, not the data
    var = 0.46 * (superclass_weight**2 + 2) + 0.09
    var += difficulty**2 * (0.46 * nuisance**2 + noise**2)
    x *= np.float32(45.0 / np.sqrt(var))
    x += np.float32(128.0)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8), labels
