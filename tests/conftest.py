import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke preset run end to end once (with --notemp) in a copy of the repository.

    NCREPRO_SMOKE_RUN=<folder> reuses a finished smoke run instead (a copy of the
    repository where `snakemake --configfile presets/smoke.yaml --notemp` ran): e.g. to
    inject a fault into its library, rerun the jobs it affects, and run the tests on it."""
    from pipeline import snakemake, workflow_copy

    if os.environ.get("NCREPRO_SMOKE_RUN"):
        return Path(os.environ["NCREPRO_SMOKE_RUN"]).resolve()
    work = workflow_copy(tmp_path_factory.mktemp("smoke"))
    result = snakemake(work, "--cores", "2", "--configfile", "presets/smoke.yaml", "--notemp")
    assert result.returncode == 0, result.stderr[-5000:]
    return work
