"""Feature extraction: penultimate activations of train and test per checkpoint.

File format (stable; audits and external checks read it), one `.npz` per split:
  features  float32 N×d   penultimate ("last hidden layer") activations
  labels    int64   N     labels of the task the features are scored on
  logits    float32 N×K   the network's outputs (classifier bias included)
  index     int64   N     row numbers in the prepared split
  classifier_weight float32 K×d, classifier_bias float32 K   (for NC3/NC4)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ncrepro.provenance import atomic_path
from ncrepro.train.device_data import Normalizer

SPLITS = ("train", "test")


@torch.no_grad()
def penultimate_and_logits(model, images_uint8, normalizer, device, batch_size=512):
    """(features, logits) in float32 numpy, evaluated in eval mode, un-augmented."""
    model.eval()
    feats, logits = [], []
    for start in range(0, len(images_uint8), batch_size):
        x = torch.from_numpy(images_uint8[start : start + batch_size]).to(device)
        h = model.penultimate(normalizer(x))
        feats.append(h.float().cpu())
        logits.append(model.classifier(h).float().cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def write_feature_file(path: Path, **arrays) -> None:
    tmp = atomic_path(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def extract_run(
    run_dir: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    batch_size: int = 512,
    log=print,
) -> list[int]:
    """Write out_dir/step{S}/{train,test}.npz for every checkpoint in run.json."""
    from ncrepro.data import load_prepared
    from ncrepro.train import build_for_spec, load_checkpoint, resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    record = json.loads((run_dir / "run.json").read_text())
    spec, run = record["spec"], record["run"]
    from ncrepro.runviews import apply_view
    from ncrepro.runviews import num_classes as view_classes

    prepared = {name: load_prepared(data_dir, name) for name in SPLITS}
    view = spec.get("view", {"kind": "full"})
    splits = {name: apply_view(view, name, raw) for name, raw in prepared.items()}
    train_images = splits["train"][0]
    normalizer = Normalizer.fit(train_images, spec["training"].get("normalize", "pixel")).to(dev)
    num_classes = view_classes(view, len(prepared["train"].class_names))
    model = build_for_spec(spec, num_classes, tuple(train_images.shape[1:])).to(dev)
    steps = []
    for entry in record["checkpoints"]:
        ckpt = load_checkpoint(run_dir / entry["file"], run=run, arch=spec["arch"])
        model.load_state_dict(ckpt["model"])
        weight = model.classifier.weight.detach().float().cpu().numpy()
        bias_param = model.classifier.bias
        bias = (
            bias_param.detach().float().cpu().numpy()
            if bias_param is not None
            else np.zeros(len(weight), np.float32)
        )
        for name, (images, labels, index) in splits.items():
            feats, logits = penultimate_and_logits(model, images, normalizer, dev, batch_size)
            write_feature_file(
                out_dir / f"step{entry['step']}" / f"{name}.npz",
                features=feats.astype(np.float32),
                labels=labels.astype(np.int64),
                logits=logits.astype(np.float32),
                index=np.asarray(index, dtype=np.int64),
                classifier_weight=weight,
                classifier_bias=bias,
            )
        steps.append(entry["step"])
        log(f"features of {run} step {entry['step']}: d = {feats.shape[1]}")
    return steps
