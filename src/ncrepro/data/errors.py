"""Errors raised by `ncrepro.data` (user-facing: their messages say what to do)."""

from __future__ import annotations

from pathlib import Path

DOWNLOAD_HINT = (
    "set `data: {download: true}` in your config (or pass --config 'data={download: true}')"
)


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are not under `data.root` (and download is off or failed).

    A FileNotFoundError (hence an Exception), so callers that treat missing inputs
    as user errors catch it too.
    """


class CorruptDataError(ValueError):
    """A dataset or prepared file exists but is unreadable, truncated or altered."""


def dataset_missing(
    name: str, folder: Path, expected: list[str], root: Path, reason: str = ""
) -> DatasetMissingError:
    """The error for missing files: dataset, folder searched, files expected, the fix."""
    where = f"'{folder}' (data.root = '{root}'"
    if not Path(folder).is_absolute():
        where += f"; absolute path '{Path(folder).absolute()}'"
    message = f"dataset '{name}' not found: expected {', '.join(expected)} in folder {where})"
    if reason:
        message += f"; {reason}"
    message += (
        f". Fix: {DOWNLOAD_HINT} to fetch it with torchvision, or place the files "
        "there (torchvision's on-disk layout)."
    )
    return DatasetMissingError(message)


def corrupt(path: Path | str, why: str) -> CorruptDataError:
    """The error for an unreadable file, naming it."""
    return CorruptDataError(f"file '{path}' is corrupt or not in the expected format: {why}")
