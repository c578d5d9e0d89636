"""Atomic file writes: every result file is written to a temp file beside its target and
renamed into place, so a killed job never leaves a half-written file that looks complete.

One writer for every format the pipeline produces: `atomic_output` (the primitive: a temp
path that replaces the target on success) and `write_bytes`, `write_json`, `write_parquet`,
`write_npz` on top of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o644  # mkstemp creates 0600 files; results are meant to be shared


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path` (same suffix, so format-sniffing writers work);
    it replaces `path` when the block succeeds and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | Path, frame) -> None:
    with atomic_output(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_npz(path: str | Path, **arrays) -> None:
    import numpy as np

    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
