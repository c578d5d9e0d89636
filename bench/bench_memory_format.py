"""Benchmark: channels_last vs the default (contiguous) memory format for a training step
on CPU, at the quick preset's sizes, as ratios measured in the same run.

    uv run python bench/bench_memory_format.py [--archs resnet18 vgg11_bn densenet121]
        [--batch-size 32] [--width 0.125] [--steps 20] [--repeats 4] [--threads 1]

Each repeat times `steps` SGD steps (after 3 untimed ones) of a fresh model in each
layout, interleaved, so a busy machine slows both; the median ratio is printed. The
training loop uses channels_last for image models on every device
(`ncrepro.train.steps.uses_channels_last`) because of these ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ncrepro.models import build_model


def steps_per_s(arch: str, channels_last: bool, args) -> float:
    torch.manual_seed(0)
    model = build_model(
        arch, num_classes=10, in_channels=3, image_size=args.image_size, width=args.width
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch_size,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for i in range(args.steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "vgg11_bn", "densenet121"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"batch {args.batch_size}, {args.image_size}x{args.image_size}, width {args.width}, "
        f"{args.threads} thread(s), {args.steps} steps x {args.repeats} repeats"
    )
    for arch in args.archs:
        base, fast = [], []
        for _ in range(args.repeats):
            base.append(steps_per_s(arch, False, args))
            fast.append(steps_per_s(arch, True, args))
        ratio = statistics.median(f / b for f, b in zip(fast, base, strict=True))
        print(
            f"{arch:12s} contiguous {statistics.median(base):7.2f} steps/s   channels_last "
            f"{statistics.median(fast):7.2f} steps/s   ratio {ratio:4.2f}x"
        )


if __name__ == "__main__":
    main()
