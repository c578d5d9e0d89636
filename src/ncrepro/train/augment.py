"""Contrastive-learning augmentations, batched on the device: several random views of
each image of a batch (SimCLR / SupCon, Khosla et al. 2020).

`supcon_view` is the CIFAR pipeline of the SupCon reference code (HobbitLong/SupContrast,
`main_supcon.py`): RandomResizedCrop(32, scale=(0.2, 1)), RandomHorizontalFlip(),
RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(p=0.2), done for
a whole batch at once with tensor operations, and with these simplifications (each keeps
the distribution of the transform close, none changes what it does):

- the crop box is drawn once per image (area fraction U(0.2, 1), log aspect ratio
  U(log 3/4, log 4/3)) and shrunk to fit the image where it does not, instead of
  torchvision's up-to-10 redraws and centre-crop fallback; its corners are continuous
  and it is resampled bilinearly (`grid_sample`) to the image size;
- the four colour-jitter operations run in the fixed order brightness, contrast,
  saturation, hue (torchvision draws a random order per image);
- for 1-channel images only brightness and contrast apply (no colour to jitter).

Every random number comes from a CPU `torch.Generator` seeded by (seed, step, view), so
a view is a pure function of (images, seed, step, view) on every device: a resumed run
replays exactly the views of an uninterrupted one. A view's numbers are drawn as one
small table (`view_draws`: the crop's affine map, then the colour parameters) and a
step's tables reach the device in one copy (`ncrepro.train.device_data.to_device`, which
does not make the host wait for the GPU); the crop grid is built from them there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ncrepro.train.device_data import to_device

CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
JITTER_P = 0.8
GRAYSCALE_P = 0.2
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


def view_generator(seed: int, step: int, view: int) -> torch.Generator:
    """The CPU generator of view `view` of the batch at `step` (distinct from crop_flip's)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_033 + int(step)) * 16 + int(view) + 7)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = GRAY_WEIGHTS
    return (r * x[:, 0] + g * x[:, 1] + b * x[:, 2])[:, None]


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle), per pixel."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    v = maxc
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0.0)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack((h, s, v), dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(x)
    for k, (r, g, b) in enumerate(choices):
        mask = (i == k)[:, None]
        out = torch.where(mask, torch.stack((r, g, b), dim=1), out)
    return out


def _crop_flip_theta(gen: torch.Generator, n: int) -> torch.Tensor:
    """The affine maps (n×6 float32, rows of 2×3) of one random resized crop + flip per
    image, in output → input coordinates of `F.affine_grid`."""
    area = _uniform(gen, n, *CROP_SCALE)
    log_ratio = _uniform(gen, n, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    ratio = torch.exp(log_ratio)
    crop_w = torch.clamp(torch.sqrt(area * ratio), max=1.0)  # fractions of the image side
    crop_h = torch.clamp(torch.sqrt(area / ratio), max=1.0)
    cx = crop_w / 2 + (1 - crop_w) * torch.rand(n, generator=gen, dtype=torch.float64)
    cy = crop_h / 2 + (1 - crop_h) * torch.rand(n, generator=gen, dtype=torch.float64)
    flip = torch.rand(n, generator=gen) < 0.5
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.where(flip, -crop_w, crop_w)
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = 2 * cy - 1
    return theta.float().reshape(n, 6)


def _colour_draws(gen: torch.Generator, n: int) -> torch.Tensor:
    """ColorJitter's and RandomGrayscale's numbers per image (n×6 float32): jitter
    applied (0/1), brightness, contrast and saturation factors, hue shift, grey (0/1)."""
    apply = torch.rand(n, generator=gen) < JITTER_P
    factors = [
        _uniform(gen, n, 1 - JITTER[k], 1 + JITTER[k]).float()
        for k in ("brightness", "contrast", "saturation")
    ]
    hue = _uniform(gen, n, -JITTER["hue"], JITTER["hue"]).float()
    grayscale = torch.rand(n, generator=gen) < GRAYSCALE_P
    return torch.stack((apply.float(), *factors, hue, grayscale.float()), dim=1)


def view_draws(seed: int, step: int, view: int, n: int, colour: bool = True) -> torch.Tensor:
    """Every random number of one view of n images (CPU, float32): n×6 affine maps of the
    crop and flip, then (`colour`) the n×6 colour parameters, n×12 in all."""
    gen = view_generator(seed, step, view)
    theta = _crop_flip_theta(gen, n)
    return torch.cat((theta, _colour_draws(gen, n)), dim=1) if colour else theta


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor · x + (1 − factor) · other, clamped to [0, 1] (torchvision's _blend)."""
    return (factor * x + (1 - factor) * other).clamp(0.0, 1.0)


def _color(x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """ColorJitter(0.4, 0.4, 0.4, 0.1) with probability 0.8, then grayscale with 0.2;
    `draws`: `_colour_draws`' n×6 numbers, on x's device."""
    channels = x.shape[1]
    per_image = draws[:, :, None, None, None]  # column k: n×1×1×1
    apply, grayscale = per_image[:, 0] > 0.5, per_image[:, 5] > 0.5
    brightness, contrast, saturation = per_image[:, 1], per_image[:, 2], per_image[:, 3]
    hue = draws[:, 4, None, None]

    y = (x * brightness).clamp(0.0, 1.0)
    gray = y.mean(dim=(1, 2, 3), keepdim=True) if channels == 1 else _gray(y)
    y = _blend(y, gray.mean(dim=(2, 3), keepdim=True), contrast)
    if channels == 3:
        y = _blend(y, _gray(y), saturation)
        hsv = _rgb_to_hsv(y)
        hsv = torch.stack(((hsv[:, 0] + hue) % 1.0, hsv[:, 1], hsv[:, 2]), dim=1)
        y = _hsv_to_rgb(hsv)
    y = torch.where(apply, y, x)
    if channels == 3:
        y = torch.where(grayscale, _gray(y).expand_as(y), y)
    return y


def _apply_view(batch: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """The view of a uint8 batch that `view_draws`' table (on the batch's device) gives:
    6 columns the crop and flip only, 12 with colour."""
    n, _, h, w = batch.shape
    x = batch.float() / 255.0
    theta = draws[:, :6].reshape(n, 2, 3).contiguous()
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (_color(x, draws[:, 6:]) if draws.shape[1] > 6 else x) * 255.0


def supcon_view(
    batch: torch.Tensor, step: int, seed: int, view: int, *, colour: bool = True
) -> torch.Tensor:
    """One SupCon view of a uint8 batch (N×C×H×W): float32 on the batch's device, in the
    0..255 range of the input (so `Normalizer` treats it like the uint8 images).
    `colour` False: the random resized crop and flip only (augment "supcon_geometric")."""
    draws = view_draws(seed, step, view, len(batch), colour)
    return _apply_view(batch, to_device(draws, batch.device))


# The view pipelines a run can name (spec training.augment): SupCon's, and its geometric
# part alone, for data whose classes are told apart by colour (the generated `synth`
# images), which colour jitter and grayscale would erase.
VIEW_AUGMENTATIONS = {"supcon": True, "supcon_geometric": False}


def multi_view(
    batch: torch.Tensor, step: int, seed: int, views: int, augment: str = "supcon"
) -> torch.Tensor:
    """`views` views of every image (pipeline `augment`), stacked view-major: rows
    v·N .. (v+1)·N − 1 are view v of the N images (the layout `Batch.per_view` undoes)."""
    colour = VIEW_AUGMENTATIONS[augment]
    draws = torch.stack([view_draws(seed, step, v, len(batch), colour) for v in range(views)])
    draws = to_device(draws, batch.device)  # the step's one copy of random numbers
    return torch.cat([_apply_view(batch, draws[v]) for v in range(views)])
