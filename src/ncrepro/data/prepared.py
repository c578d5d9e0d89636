"""`prepare` writes a dataset's splits as npz + manifest.json; `load_prepared` reads
them back after checking each file's sha256 against the manifest."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ncrepro.atomic import write_bytes
from ncrepro.data.errors import corrupt
from ncrepro.data.load import SPLITS, load_split
from ncrepro.data.registry import DATASETS, RawSplit

FORMAT_VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same data -> same bytes -> same sha256


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (readable by np.load) with fixed zip timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _source(name: str, root: str) -> dict:
    info = DATASETS[name]
    if not info.needs_root:
        library = "scikit-learn load_digits" if name == "digits" else "ncrepro.data.synth"
        return {"kind": info.kind, "from": library}
    folder = f"{root}/{info.folder}" if info.folder else str(root)
    return {"kind": "root", "root": str(root), "folder": folder}


def prepare(name: str, params: dict | None, root: str, download: bool, out_dir: str | Path) -> dict:
    """Load train and test, write out_dir/{train,test}.npz (images, labels, index) and
    out_dir/manifest.json; return the manifest. `root` is recorded as given."""
    params = dict(params or {})
    out_dir = Path(out_dir)
    splits = {s: load_split(name, s, root=root, download=download, **params) for s in SPLITS}
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": name,
        "params": params,
        "source": _source(name, root),
        "class_names": splits["train"].class_names,
        "splits": {},
    }
    if name == "synth":
        from ncrepro.data.synth import superclass_groups

        manifest["superclasses"] = superclass_groups(
            params.get("num_classes", 10), params.get("num_superclasses", 2)
        )
    for split_name, split in splits.items():
        data = npz_bytes({"images": split.images, "labels": split.labels, "index": split.index})
        file = f"{split_name}.npz"
        write_bytes(out_dir / file, data)
        manifest["splits"][split_name] = {
            "file": file,
            "n": len(split),
            "shape": list(split.images.shape),
            "dtype": str(split.images.dtype),
            "labels_dtype": str(split.labels.dtype),
            "per_class": np.bincount(split.labels, minlength=split.num_classes).tolist(),
            "class_names": split.class_names,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_bytes(out_dir / "manifest.json", text.encode())
    return json.loads(text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_prepared(data_dir: str | Path) -> None:
    """Raise CorruptDataError (naming the file and the fix) if a split file of a prepared
    dataset changed since its manifest was written. Cheap: only files newer than the
    manifest are hashed. The workflow calls it before planning, so a damaged file is
    reported before any job downstream of it is rerun (and its outputs deleted)."""
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        return
    written = manifest_path.stat().st_mtime
    manifest = json.loads(manifest_path.read_text())
    for split, entry in manifest.get("splits", {}).items():
        path = data_dir / entry["file"]
        if path.is_file() and path.stat().st_mtime > written:
            load_prepared(data_dir, split)  # verifies the sha256 and raises with the fix


def load_prepared(data_dir: str | Path, split: str, *, verify: bool = True) -> RawSplit:
    """A split written by `prepare`, after checking its sha256 against manifest.json."""
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no prepared data: '{manifest_path}' is missing (run prepare)")
    try:
        manifest = json.loads(manifest_path.read_text())
        entry = manifest["splits"][split]
    except (ValueError, KeyError) as exc:
        raise corrupt(manifest_path, f"no valid entry for split {split!r} ({exc})") from None
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise corrupt(
            manifest_path,
            f"format version {manifest['format_version']} is newer than this ncrepro "
            f"({FORMAT_VERSION})",
        )
    path = data_dir / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"prepared file '{path}' listed in '{manifest_path}' is missing")
    if verify and _sha256(path) != entry["sha256"]:
        raise corrupt(
            path,
            f"its sha256 does not match the one in '{manifest_path}' (modified or truncated?). "
            f"Fix: delete the folder '{data_dir}' and rerun; Snakemake prepares it again",
        )
    with np.load(path, allow_pickle=False) as f:
        return RawSplit(f["images"], f["labels"], list(manifest["class_names"]), f["index"])
