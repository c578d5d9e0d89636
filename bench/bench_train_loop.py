"""Benchmark: ncrepro's training loop vs a plain DataLoader + torch.optim loop, and the
steps/s per architecture that `ncrepro estimate` turns into a preset's GPU-hours.

    uv run python bench/bench_train_loop.py                  # CPU: ResNet-18, 1 + 5 steps
    uv run python bench/bench_train_loop.py --device cuda    # 50 + 200 steps
    uv run python bench/bench_train_loop.py --rates-file rates.json   # keep the rates
    uv run python bench/bench_train_loop.py --quick          # tiny: seconds (tests)

Both loops train the same model (`--arch`, width 1) on the same data (seeded random uint8
images, 3x32x32, 10 classes) at `--batch-size` 128: SGD with momentum 0.9 and weight
decay 5e-4, cosine LR, cross-entropy, the same arithmetic (CUDA: bf16 autocast and
channels_last; CPU: float32):

- ncrepro: `ncrepro.train.train`, the loop every run uses (data on the device, batches
  drawn there, loss and accuracy read once per logging interval); steps/s from its
  train log's elapsed time between the warm-up row and the last row;
- plain: `DataLoader(TensorDataset(normalized float32 images), shuffle, drop_last,
  pin_memory on CUDA)`, batches copied with `non_blocking`, `torch.optim.SGD` +
  `CosineAnnealingLR`, and the usual running loss (`loss.item()` every step); timed
  after the same warm-up.

Then ncrepro's loop is timed for every architecture the preset trains (`--preset`,
default presets/paper.yaml) at the same reference batch, and `ncrepro.estimate` prints
the preset's compute per study from those rates (GPU-hours when run on the GPU that
will run the preset). Absolute numbers are this machine's; the ratio is the comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ncrepro.errors import DeviceError
from ncrepro.estimate import (
    DEFAULT_PRESET,
    estimate,
    format_estimate,
    load_preset,
    load_rates,
    rates_document,
)
from ncrepro.studies import build_run_sheet
from ncrepro.train import build_for_spec, resolve_device, train
from ncrepro.train.steps import default_precision, place_model, uses_channels_last

NUM_CLASSES = 10
# Per device: warm-up and timed steps of the comparison and of each architecture's rate.
# ncrepro logs (reads the device) every `warmup` steps, as a run logs every <= 100 steps.
DEFAULTS = {
    "cpu": {"warmup": 1, "steps": 5, "rate_warmup": 1, "rate_steps": 2, "n_train": 2048},
    "cuda": {"warmup": 50, "steps": 200, "rate_warmup": 20, "rate_steps": 60, "n_train": 50000},
}
QUICK = {
    "batch_size": 8,
    "width": 0.125,
    "warmup": 1,
    "steps": 2,
    "rate_warmup": 1,
    "rate_steps": 1,
    "n_train": 64,
}


def make_data(n: int, image_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, image_size, image_size), dtype=np.uint8)
    return images, (np.arange(n) % NUM_CLASSES).astype(np.int64)


def bench_spec(arch: str, width: float, batch_size: int, warmup: int, steps: int) -> dict:
    """A run spec: SGD 0.9 / 5e-4, cosine, no checkpoints, a log row after the warm-up."""
    total = warmup + steps
    return {
        "arch": arch,
        "width": width,
        "seed": 0,
        "lr": 0.1,
        "training": {
            "optimizer": "sgd",
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "batch_size": batch_size,
            "steps": total,
            "lr_schedule": "cosine",
            "normalize": "channel",
            "augment": "none",
            "checkpoints": {"schedule": "final"},
            "log_every": warmup,  # rows at the warm-up's end (and its multiples) and the end
        },
        "checkpoint_steps": [total],
    }


def ncrepro_rate(spec: dict, images, labels, device) -> float:
    """Steps/s of `ncrepro.train.train` after the warm-up (from its train log)."""
    model = build_for_spec(spec, NUM_CLASSES, images.shape[1:])
    with tempfile.TemporaryDirectory() as folder:
        result = train(
            spec,
            "bench",
            model,
            images,
            labels,
            Path(folder) / "ckpt",
            Path(folder) / "scratch",
            device=device,
            log=lambda message: None,
        )
    log = result.log.set_index("step")["elapsed_s"]
    warmup, total = spec["training"]["log_every"], spec["training"]["steps"]
    return (total - warmup) / (log[total] - log[warmup])


def plain_rate(spec: dict, images, labels, device) -> float:
    """Steps/s of a DataLoader + torch.optim loop on the same model, data and update."""
    from torch.utils.data import DataLoader, TensorDataset

    t = spec["training"]
    warmup, total = t["log_every"], t["steps"]
    x = torch.from_numpy(images).float() / 255.0
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
    dataset = TensorDataset((x - mean) / std, torch.from_numpy(labels))
    cuda = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_size=t["batch_size"],
        shuffle=True,
        drop_last=True,
        pin_memory=cuda,
        generator=torch.Generator().manual_seed(0),
    )
    model = place_model(build_for_spec(spec, NUM_CLASSES, images.shape[1:]), device, True)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=spec["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    autocast = default_precision(device) == "bf16-autocast"
    layout = torch.channels_last if uses_channels_last(device, True) else torch.contiguous_format
    model.train()
    step, running_loss, start = 0, 0.0, None
    while step < total:
        for xb, yb in loader:
            if step == warmup:
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=layout)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running_loss += loss.item()
            step += 1
            if step == total:
                break
    if cuda:
        torch.cuda.synchronize()
    if not math.isfinite(running_loss):
        raise RuntimeError(f"the plain loop diverged (running loss {running_loss})")
    return (total - warmup) / (time.perf_counter() - start)


def preset_archs(config: dict) -> list[str]:
    """Every architecture the preset's enabled studies train."""
    _, specs = build_run_sheet(config)
    return sorted({spec["arch"] for spec in specs.values()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: cpu)")
    parser.add_argument("--arch", default="resnet18", help="architecture compared")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, help="untimed steps (cpu 1, cuda 50)")
    parser.add_argument("--steps", type=int, help="timed steps (cpu 5, cuda 200)")
    parser.add_argument("--rate-steps", type=int, help="timed steps per arch (cpu 2, cuda 60)")
    parser.add_argument("--n-train", type=int, help="images (cpu 2048, cuda 50000)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--repeats", type=int, default=1, help="time both loops this often, interleaved; best"
    )
    parser.add_argument("--preset", action="append", help="default: presets/paper.yaml")
    parser.add_argument("--rates-file", help="write the per-architecture rates here (JSON)")
    parser.add_argument("--no-rates", action="store_true", help="compare the loops only")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: not a measurement")
    args = parser.parse_args(argv)

    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads or args.quick:  # quick: one thread (two stall each other on a busy CPU)
        torch.set_num_threads(args.threads or 1)
    settings = {**DEFAULTS[device.type], "batch_size": args.batch_size, "width": 1.0}
    if args.quick:
        settings.update(QUICK)
    for key in ("warmup", "steps", "rate_steps", "n_train"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    batch, width = settings["batch_size"], settings["width"]
    images, labels = make_data(max(settings["n_train"], batch), args.image_size)
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    precision = default_precision(device)
    layout = "channels_last" if uses_channels_last(device, True) else "contiguous"
    print(f"device {device}{threads}; {precision}, {layout}")
    if args.quick:
        print("QUICK: tiny batch and width, a smoke test of the bench, not a measurement")

    spec = bench_spec(args.arch, width, batch, settings["warmup"], settings["steps"])
    ours, plain = 0.0, 0.0
    for _ in range(args.repeats):  # interleaved: a busy machine slows both alike
        ours = max(ours, ncrepro_rate(spec, images, labels, device))
        plain = max(plain, plain_rate(spec, images, labels, device))
    print(
        f"{args.arch} (width {width:g}), batch {batch} of 3x{args.image_size}x{args.image_size}, "
        f"{len(images)} images, {settings['warmup']} warm-up + {settings['steps']} timed steps"
        f"{f', best of {args.repeats}' if args.repeats > 1 else ''}"
    )
    print(f"  ncrepro loop  {ours:10.4g} steps/s")
    print(f"  plain loop    {plain:10.4g} steps/s  (DataLoader + torch.optim)")
    print(f"  ratio ncrepro / plain: {ours / plain:.3f}")
    if args.no_rates:
        return 0

    presets = args.preset or [DEFAULT_PRESET]
    config = load_preset(*presets)
    archs = preset_archs(config)
    print(
        f"\nrates of the ncrepro loop per architecture of {' + '.join(presets)} "
        f"({settings['rate_warmup']} warm-up + {settings['rate_steps']} timed steps each):"
    )
    measured = {}
    for arch in archs:
        rate_spec = bench_spec(arch, width, batch, settings["rate_warmup"], settings["rate_steps"])
        measured[arch] = ncrepro_rate(rate_spec, images, labels, device)
        print(f"  {arch:<12} {measured[arch]:10.4g} steps/s")
    reference = {"batch_size": batch, "image_size": [args.image_size] * 2, "views": 1}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu" + threads
    document = rates_document(measured, reference, name, precision)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.rates_file) if args.rates_file else Path(folder) / "rates.json"
        path.write_text(json.dumps(document, indent=1) + "\n")
        rates = load_rates(rates_file=path)
    print()
    print(format_estimate(estimate(config, rates), presets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
