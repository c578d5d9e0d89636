"""The run context: run spec/record -> prepared data -> view -> normalizer -> model at a
checkpoint. Training, feature extraction and the probes all start from it, so the chain
exists once."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from ncrepro.data import load_prepared
from ncrepro.data.views import FULL, apply_view, num_classes


class RunContext:
    """One run's spec, its prepared data and view, and its model.

    `record` (run.json) exists once the run is trained; before that (training) only the
    spec is known. Splits are loaded (and their sha256 checked) on first use."""

    def __init__(self, spec: dict, run: str, data_dir: Path, *, device="auto", record=None):
        self.spec, self.run, self.data_dir = spec, run, Path(data_dir)
        self.record, self.run_dir = record, None
        self.device = device

    @classmethod
    def from_run_dir(cls, run_dir: Path, data_dir: Path, *, device="auto") -> RunContext:
        record = json.loads((Path(run_dir) / "run.json").read_text())
        context = cls(record["spec"], record["run"], data_dir, device=device, record=record)
        context.run_dir = Path(run_dir)
        return context

    @cached_property
    def torch_device(self):
        from ncrepro.train import resolve_device

        return resolve_device(str(self.device))

    @cached_property
    def _prepared(self) -> dict:
        return {}

    def prepared(self, split: str):
        if split not in self._prepared:
            self._prepared[split] = load_prepared(self.data_dir, split)
        return self._prepared[split]

    @property
    def view_spec(self) -> dict:
        return self.spec.get("view", FULL)

    def view(self, split: str, task: str = "pretrain"):
        """(images uint8 N×C×H×W, labels, index into the prepared split) of `task`."""
        return apply_view(self.view_spec, split, self.prepared(split), task=task)

    def num_classes(self, task: str = "pretrain") -> int:
        return num_classes(self.view_spec, len(self.prepared("train").class_names), task)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.prepared("train").images.shape[1:])

    @cached_property
    def normalizer(self):
        """Standardization fitted on the run's own train images (as in training)."""
        from ncrepro.train.device_data import Normalizer

        kind = self.spec["training"].get("normalize", "pixel")
        return Normalizer.fit(self.view("train")[0], kind).to(self.torch_device)

    def build_model(self):
        """The run's model, freshly initialised from its seed (on the CPU)."""
        from ncrepro.train import build_for_spec

        return build_for_spec(self.spec, self.num_classes(), self.image_shape)

    def checkpoints(self) -> list[dict]:
        return self.record["checkpoints"]

    def model_at(self, step: int, model=None):
        """The model with the weights of checkpoint `step`, on the context's device;
        `model` reuses an already built instance. The file must still have the sha256
        run.json recorded when it was written, and belong to this run and arch."""
        from ncrepro.errors import CheckpointError
        from ncrepro.provenance import sha256_file
        from ncrepro.train import load_checkpoint

        entry = next((c for c in self.checkpoints() if c["step"] == step), None)
        if entry is None:
            raise FileNotFoundError(f"run {self.run} has no checkpoint at step {step}")
        path = self.run_dir / entry["file"]
        if path.is_file() and sha256_file(path) != entry["sha256"]:
            raise CheckpointError(
                f"checkpoint {path} changed since training wrote it (its sha256 differs "
                f"from the one in {self.run_dir / 'run.json'}). Fix: restore the file, or "
                f"delete the folder {self.run_dir} and rerun to retrain the run"
            )
        ckpt = load_checkpoint(path, run=self.run, arch=self.spec["arch"])
        model = self.build_model() if model is None else model
        model.load_state_dict(ckpt["model"])
        from ncrepro.train.steps import place_model  # the layout training used

        return place_model(model, self.torch_device, images_4d=len(self.image_shape) == 3)
