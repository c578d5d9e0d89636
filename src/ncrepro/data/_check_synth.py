"""One-off check that `synth` has a real train/test gap (not part of the pipeline).

Trains a tiny CNN (2 conv layers, width 16, BatchNorm, SGD + momentum, cosine LR) on
synth and prints train and test accuracy. Takes about a minute on 2 CPU cores:

    uv run python -m ncrepro.data._check_synth '{"difficulty": 1.0}'

Measured with the defaults (1500 steps, 2 CPU threads; torch's CPU kernels are not
bit-reproducible, so train accuracy varies a little between runs):
seed 0: train 0.97-1.00, test 0.70-0.73; seed 1: train 1.00, test 0.71;
100/50 images per class: train 1.00, test 0.75. Difficulty 2/3: train 1.00, test 0.90.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ncrepro.data import load_split

DEFAULTS = {"num_classes": 10, "n_train_per_class": 300, "n_test_per_class": 100, "seed": 0}


def check(
    params: dict,
    *,
    steps: int = 1500,
    width: int = 16,
    batch_size: int = 64,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    seed: int = 0,
    threads: int = 2,
) -> dict:
    """Train the tiny CNN; return train/test accuracy and timings."""
    import torch
    from torch import nn

    t0 = time.perf_counter()
    train, test = (load_split("synth", s, **params) for s in ("train", "test"))
    generated = time.perf_counter() - t0
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    x = torch.tensor(train.images, dtype=torch.float32)
    x_test = torch.tensor(test.images, dtype=torch.float32)
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    y, y_test = torch.tensor(train.labels), torch.tensor(test.labels)
    net = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * 64, train.num_classes),
    )
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(y), (batch_size,), generator=generator)
        loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    net.eval()
    with torch.no_grad():
        train_acc = (net(x).argmax(1) == y).float().mean().item()
        test_acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    return {
        "train_acc": round(train_acc, 4),
        "test_acc": round(test_acc, 4),
        "chance": round(1 / train.num_classes, 4),
        "generate_s": round(generated, 2),
        "total_s": round(time.perf_counter() - t0, 1),
        "images_mean_std": [
            round(float(np.mean(train.images)), 1),
            round(float(np.std(train.images)), 1),
        ],
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    for text in argv or ["{}"]:
        params = {**DEFAULTS, **json.loads(text)}
        print(json.dumps({"params": params, **check(params)}), flush=True)


if __name__ == "__main__":
    main()
