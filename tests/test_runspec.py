"""Run specs and the run sheet: checkpoint schedules, run identity, grid expansion."""

from ncrepro.config import load_config
from ncrepro.runspec import checkpoint_steps, run_id
from ncrepro.studies import build_run_sheet
from ncrepro.studies.nc_limits.runs import run_spec


def test_checkpoint_schedules():
    assert checkpoint_steps({"schedule": "final"}, 100) == [100]
    assert checkpoint_steps({"schedule": "linear", "every": 30}, 100) == [30, 60, 90, 100]
    log = checkpoint_steps({"schedule": "log", "count": 5, "first": 1}, 10000)
    assert log == [1, 10, 100, 1000, 10000]
    # rounding collisions collapse, the final step is always present
    dense = checkpoint_steps({"schedule": "log", "count": 10, "first": 1}, 5)
    assert dense == sorted(set(dense)) and dense[-1] == 5


def test_run_id_changes_with_hyperparameters(repo):
    config = load_config(repo / "config.yaml")
    a = run_id(run_spec(config, "synth10", "resnet18", 0))
    assert a == run_id(run_spec(config, "synth10", "resnet18", 0))
    config["nc_limits"]["training"]["weight_decay"] = 1e-3
    b = run_id(run_spec(config, "synth10", "resnet18", 0))
    assert a != b and a.startswith("resnet18-synth10-s0-")


def test_paper_grid(repo):
    config = load_config(repo / "config.yaml", repo / "presets/paper.yaml")
    sheet, specs = build_run_sheet(config)
    sheet = sheet[sheet["study"] == "nc_limits"]
    specs = {run: spec for run, spec in specs.items() if spec["study"] == "nc_limits"}
    grid = sheet[sheet["experiment"] == "grid"]
    assert len(grid) == 15 and grid["run"].nunique() == 15
    stl = grid[grid["dataset"] == "stl10"]
    assert set(stl["arch"]) == {"resnet50", "densenet201", "vgg11_bn"}
    assert set(stl["grid_arch"]) == {"resnet18", "densenet201", "vgg11_bn"}
    # fig1/fig2 reuse the CIFAR-10/ResNet18 cell of the grid: 15 distinct runs for fig1-3,
    # plus 50 fig4 subset runs and 10 fig5 pretrainings
    assert len(specs) == 15 + 50 + 10
    spec = specs[sheet.loc[sheet["experiment"] == "curves", "run"].iloc[0]]
    assert spec["training"]["steps"] == 80000 and spec["lr"] == 0.1
    assert spec["training"]["batch_size"] == 128 and spec["training"]["momentum"] == 0.9
    lrs = {s["arch"]: s["lr"] for s in specs.values() if "view" not in s}
    assert lrs == {"resnet18": 0.1, "resnet50": 0.1, "densenet201": 0.01, "vgg11_bn": 0.01}
