"""Feature stage: penultimate activations of train and test at every checkpoint of a run.

File format (stable; audits and external checks read it), one `.npz` per split:
  features  float32 N×d   penultimate ("last hidden layer") activations
  labels    int64   N     labels of the task the features are scored on
  index     int64   N     row numbers in the prepared split
and, when the model has a classifier (not for an encoder):
  logits    float32 N×K   the network's outputs (classifier bias included)
  classifier_weight float32 K×d, classifier_bias float32 K (zeros without a bias)
                          (for NC3/NC4)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ncrepro.atomic import write_npz
from ncrepro.stages.context import RunContext

SPLITS = ("train", "test")


@torch.no_grad()
def penultimate_and_logits(model, images_uint8, normalizer, device, batch_size=512):
    """(features, logits or None) in float32 numpy, in eval mode, un-augmented."""
    model.eval()
    feats, logits = [], []
    for start in range(0, len(images_uint8), batch_size):
        x = torch.from_numpy(images_uint8[start : start + batch_size]).to(device)
        h = model.penultimate(normalizer(x))
        feats.append(h.float().cpu())
        if model.classifier is not None:
            logits.append(model.classifier(h).float().cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy() if logits else None


def _classifier_arrays(model) -> dict[str, np.ndarray]:
    """W and b of the last layer (b = 0 without a bias); none for an encoder."""
    if model.classifier is None:
        return {}
    weight = model.classifier.weight.detach().float().cpu().numpy()
    bias = model.classifier.bias
    bias = np.zeros(len(weight), np.float32) if bias is None else bias.detach().float().cpu()
    return {"classifier_weight": weight, "classifier_bias": np.asarray(bias, np.float32)}


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
    if threads:
        torch.set_num_threads(threads)
    context = RunContext.from_run_dir(run_dir, data_dir, device=device)
    # the folder is the job's output even for a run that diverged before its first checkpoint
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    splits = {name: context.view(name) for name in SPLITS}
    model = context.build_model()
    steps = []
    for entry in context.checkpoints():
        model = context.model_at(entry["step"], model)
        classifier = _classifier_arrays(model)
        for name, (images, labels, index) in splits.items():
            feats, logits = penultimate_and_logits(
                model, images, context.normalizer, context.torch_device, batch_size
            )
            outputs = {} if logits is None else {"logits": logits.astype(np.float32)}
            write_npz(
                out_dir / f"step{entry['step']}" / f"{name}.npz",
                features=feats.astype(np.float32),
                labels=labels.astype(np.int64),
                index=np.asarray(index, dtype=np.int64),
                **outputs,
                **classifier,
            )
        steps.append(entry["step"])
        log(f"features of {context.run} step {entry['step']}: d = {feats.shape[1]}")
    return steps
