"""Fine-tuning probe (Hui et al. 2022, §4.2 and appendix B) and feature extraction.

The pretrained model is copied; its classifier is replaced by a new, seeded
`nn.Linear(feature_dim, num_classes)`; then *all* weights are trained with SGD
(momentum, weight decay, cosine LR from `lr`) on the downstream train set, and
the copy is evaluated on the downstream test set. The pretrained model itself is
never modified.

The training losses stay on the device and are read every `check_every` steps and at
the end (one transfer each, `ncrepro.train.loop.PendingSteps`), as the training loop
reads them at its logging steps: a divergence (NaN/inf loss) is noticed at the next read
and recorded where it happened (status "diverged", `steps_done` the step whose loss was
not finite, `last_batch_loss` that loss), as a per-step check would; the steps run after
it until the read are wasted compute (the one trace they leave: the model `return_model`
gives for a diverged fine-tune has taken them too).

Determinism: the new head's init, the batch order (`batch_indices`, seeded by
(seed, step)) and any stochastic layer (dropout) use RNG state forked from the
global one and seeded with `seed`, so a call is a pure function of its inputs on
CPU and leaves the caller's RNG state untouched.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ncrepro.metrics import accuracy as _accuracy
from ncrepro.metrics import cross_entropy as _cross_entropy
from ncrepro.train.device_data import DeviceDataset, Normalizer
from ncrepro.train.loop import PendingSteps, resolve_device
from ncrepro.train.objectives import CrossEntropy
from ncrepro.train.optim import SGD
from ncrepro.train.steps import StepLoop, place_model


def _device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    return resolve_device(str(device))


def _normalizer(normalizer, train_images: np.ndarray, device: torch.device) -> Normalizer:
    """A Normalizer as given, or fitted on the downstream train images for a kind string."""
    if isinstance(normalizer, Normalizer):
        return normalizer.to(device)
    return Normalizer.fit(train_images, str(normalizer)).to(device)


# What `extract_features` can read: the classifier's input, or the backbone's output.
REPRESENTATIONS = ("penultimate", "backbone")


def feature_dim(model: nn.Module) -> int:
    dim = getattr(model, "feature_dim", None)
    return int(dim) if dim is not None else int(model.classifier.in_features)


@torch.no_grad()
def _outputs(model, images: np.ndarray, normalizer: Normalizer, device, batch_size, fn):
    """`fn(model, x)` over `images` (uint8 N×C×H×W) in eval mode, as float32 numpy."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            chunks.append(fn(model, normalizer(batch.to(device))).float().cpu().numpy())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(chunks)


def extract_features(
    model: nn.Module,
    images: np.ndarray,
    *,
    normalizer: Normalizer | str,
    device="cpu",
    batch_size: int = 1024,
    representation: str = "penultimate",
) -> np.ndarray:
    """Penultimate features `model.penultimate(x)` (eval mode) of uint8 images, N×d float32;
    `representation="backbone"`: the backbone's output `model.backbone(x)` instead (before
    any embedding / projection head: a SupCon encoder's representation).

    Pass the pretraining run's Normalizer so the features are those the model was
    trained to produce; a kind string ("pixel", ...) fits one on `images`. The model
    is moved to `device` (in place, as nn.Module.to does).
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    dev = _device(device)
    norm = _normalizer(normalizer, images, dev)
    model = model.to(dev)
    if representation == "backbone":
        return _outputs(model, images, norm, dev, batch_size, lambda m, x: m.backbone(x))
    return _outputs(model, images, norm, dev, batch_size, lambda m, x: m.penultimate(x))


def finetune_probe(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    lr: float,
    steps: int,
    batch_size: int,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int,
    device="cpu",
    normalizer: Normalizer | str = "pixel",
    lr_schedule: str = "cosine",
    augment: str = "none",
    eval_batch_size: int = 1024,
    return_model: bool = False,
    check_every: int = 100,
) -> dict:
    """Fine-tune a copy of `model` with a new head on a downstream task; test accuracy.

    Images are uint8 N×C×H×W, labels int in [0, num_classes). `normalizer`: the
    pretraining run's Normalizer (recommended: the backbone sees inputs scaled as in
    pretraining) or a kind string ("pixel", "channel", "none") fitted on
    `train_images`. Each update is `ncrepro.train.steps.StepLoop.run`, the step of
    `ncrepro.train.loop.train`: SGD with momentum and weight decay on every parameter,
    `lr_at(step, lr, steps, lr_schedule)`, batches `batch_indices(n, batch_size, step,
    seed)` (last partial batch dropped), cross-entropy, bf16 autocast on CUDA only,
    optional crop+flip augmentation.

    Returns {"status", "lr", "seed", "steps_done", "accuracy" (test), "test_loss",
    "train_accuracy", "train_loss" (eval mode, full downstream train set),
    "last_batch_loss", "n_train", "n_test"} (+ "model" with `return_model`).
    A NaN/inf training loss or non-finite evaluation logits gives status "diverged"
    with NaN accuracies and losses; no exception is raised. The losses are read from
    the device every `check_every` steps and at the end (see the module docstring).
    """
    if not (isinstance(check_every, int) and check_every >= 1):
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    dev = _device(device)
    norm = _normalizer(normalizer, train_images, dev)
    data = DeviceDataset(train_images, train_labels, dev)
    if len(data) == 0:
        raise ValueError("finetune_probe needs at least one training sample")
    use_cuda = dev.type == "cuda"
    status, step, last_loss = "completed", 0, float("nan")

    fork_devices = [dev] if use_cuda else []
    with torch.random.fork_rng(devices=fork_devices, device_type="cuda" if use_cuda else None):
        torch.manual_seed(seed)
        net = copy.deepcopy(model)
        net.classifier = nn.Linear(feature_dim(model), num_classes)
        place_model(net, dev, train_images.ndim == 4)
        group = {"params": list(net.parameters()), "base_lr": lr, "lr_schedule": lr_schedule}
        optimizer = SGD([group], lr=lr, momentum=momentum, weight_decay=weight_decay)
        loop = StepLoop(
            net,
            optimizer,
            CrossEntropy(),
            data,
            norm,
            batch_size=batch_size,
            seed=seed,
            total_steps=steps,
            augment=augment,
        )
        net.train()
        pending = PendingSteps(scored=False)
        while step < steps:
            step += 1
            pending.add(step, loop.run(step - 1))
            if step % check_every == 0 or step == steps:
                entries, divergence = pending.flush()  # the interval's one read
                if divergence:
                    status, step, last_loss = "diverged", divergence.step, divergence.loss
                    break
                last_loss = entries[-1][0]

    result = {
        "status": status,
        "lr": float(lr),
        "seed": int(seed),
        "steps_done": int(step),
        "last_batch_loss": last_loss,
        "n_train": int(len(train_labels)),
        "n_test": int(len(test_labels)),
    }
    nan_metrics = {
        "accuracy": float("nan"),
        "test_loss": float("nan"),
        "train_accuracy": float("nan"),
        "train_loss": float("nan"),
    }
    if status == "completed":

        def logits_of(images):
            return _outputs(net, images, norm, dev, eval_batch_size, lambda m, x: m(x))

        test_logits, train_logits = logits_of(test_images), logits_of(train_images)
        if np.isfinite(test_logits).all() and np.isfinite(train_logits).all():
            result.update(
                accuracy=_accuracy(test_logits, test_labels),
                test_loss=_cross_entropy(test_logits, test_labels),
                train_accuracy=_accuracy(train_logits, train_labels),
                train_loss=_cross_entropy(train_logits, train_labels),
            )
        else:
            result["status"] = "diverged"
            result.update(nan_metrics)
    else:
        result.update(nan_metrics)
    if return_model:
        result["model"] = net
    return result
