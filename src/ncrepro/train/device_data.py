"""Datasets held on the device as uint8 tensors; batches, normalization and
augmentation run there too (no per-sample Python in the hot loop).

The random numbers (batch order, crop offsets, flips) come from seeded CPU generators, so
they are the same on every device; they reach the GPU through `to_device`, which does not
make the host wait for the GPU (a training step then queues its work and returns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Above this many pixel values (2^28: CIFAR's 1.5e8 stay below) the statistics are
# accumulated over chunks of images: a float64 copy of ImageNet32's 1.28 M train images
# would take 31 GB. Smaller sets keep the one-shot computation (and their exact bits).
CHUNKED_ABOVE = 2**28
CHUNK_IMAGES = 65536


def _chunked_moments(images: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of images/255 per pixel ("pixel") or per channel
    ("channel"), in float64, two passes over chunks of CHUNK_IMAGES images."""
    axes = (0,) if kind == "pixel" else (0, 2, 3)
    count = images.shape[0] * (1 if kind == "pixel" else images.shape[2] * images.shape[3])
    chunks = range(0, len(images), CHUNK_IMAGES)
    total = sum(
        (images[i : i + CHUNK_IMAGES].astype(np.float64) / 255.0).sum(axis=axes) for i in chunks
    )
    mean = total / count
    shaped = mean if kind == "pixel" else mean[:, None, None]
    squares = sum(
        ((images[i : i + CHUNK_IMAGES].astype(np.float64) / 255.0 - shaped) ** 2).sum(axis=axes)
        for i in chunks
    )
    std = np.sqrt(squares / count)
    return shaped, std if kind == "pixel" else std[:, None, None]


@dataclass
class Normalizer:
    """Standardization fitted on the train split and applied to every split.

    kind: "pixel" (per-pixel mean/std over the train set), "channel" (per-channel),
    or "none" (scale to [0, 1] only).
    """

    kind: str
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, images: np.ndarray, kind: str) -> Normalizer:
        if kind in ("pixel", "channel") and images.size > CHUNKED_ABOVE:
            mean, std = _chunked_moments(images, kind)
        elif kind == "pixel":
            x = images.astype(np.float64) / 255.0
            mean, std = x.mean(axis=0), x.std(axis=0)
        elif kind == "channel":
            x = images.astype(np.float64) / 255.0
            mean = x.mean(axis=(0, 2, 3))[:, None, None]
            std = x.std(axis=(0, 2, 3))[:, None, None]
        elif kind == "none":
            mean, std = np.zeros((1, 1, 1)), np.ones((1, 1, 1))
        else:
            raise ValueError(f"unknown normalization {kind!r}")
        std = np.where(std < 1e-8, 1.0, std)  # constant pixels (e.g. digit borders)
        return cls(
            kind, torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        )

    def to(self, device) -> Normalizer:
        return Normalizer(self.kind, self.mean.to(device), self.std.to(device))

    def __call__(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return (batch_uint8.float() / 255.0 - self.mean) / self.std


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """A CPU tensor on `device`. On CUDA the copy goes through pinned memory and is
    queued behind the GPU's work: a plain `.to("cuda")` from pageable memory waits until
    the GPU has finished everything queued so far (a host sync every step)."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class DeviceDataset:
    """uint8 images (N×C×H×W) and int64 labels, resident on `device`."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.device = torch.device(device)
        self._order_key: tuple[int, int, int] | None = None  # (seed, batch size, epoch)
        self._order: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch_index(self, batch_size: int, step: int, seed: int) -> torch.Tensor:
        """`batch_indices(len(self), batch_size, step, seed)` on the device: the epoch's
        permutation is copied there once per epoch, not once per step."""
        batch_size, per_epoch = _epoch_shape(len(self), batch_size)
        epoch, offset = divmod(step, per_epoch)
        if self._order_key != (seed, batch_size, epoch):
            self._order = to_device(epoch_permutation(len(self), seed, epoch), self.device)
            self._order_key = (seed, batch_size, epoch)
        return self._order[offset * batch_size : (offset + 1) * batch_size]


def _epoch_shape(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, batches per epoch): at most n per batch, the last partial one dropped."""
    batch_size = min(batch_size, n)
    return batch_size, n // batch_size


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n samples in `epoch` (CPU), seeded by (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the batch at global `step` (0-based).

    Each epoch is a fresh permutation seeded by (seed, epoch), and the last partial
    batch is dropped, so the batch sequence is a pure function of (seed, step):
    resuming at any step replays exactly the same data order.
    """
    batch_size, per_epoch = _epoch_shape(n, batch_size)
    epoch, offset = divmod(step, per_epoch)
    return epoch_permutation(n, seed, epoch)[offset * batch_size : (offset + 1) * batch_size]


def crop_flip(batch: torch.Tensor, step: int, seed: int, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip, seeded by (seed, step)."""
    n, _, h, w = batch.shape
    gen = torch.Generator().manual_seed(seed * 7_919 + step + 1)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    # one copy to the device for the three draws
    dx, dy, flip = to_device(torch.stack((dx, dy, flip.long())), batch.device)
    flip = flip.bool()
    padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad))
    rows = (torch.arange(h, device=batch.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = torch.arange(w, device=batch.device)[None, :].expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    cols = cols[:, None, None, :]
    idx_n = torch.arange(n, device=batch.device)[:, None, None, None]
    idx_c = torch.arange(batch.shape[1], device=batch.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]
