"""Errors the CLI reports without a traceback, importable without torch (the CLI's
non-torch stages must not pay torch's multi-second import)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that is corrupt or belongs to another run/architecture."""


class Interrupted(Exception):
    """Raised after the resume state was saved on SIGTERM (or a simulated kill)."""


class DeviceError(ValueError):
    """A device that this machine does not have (e.g. cuda without a GPU)."""
