"""Each stage's outputs checked against that stage's own inputs, on the smoke run
(`--notemp` keeps the feature files):

- features: rows and labels = the run's view of the prepared splits; values = the
  penultimate layer of that step's checkpoint, recomputed here;
- metrics: every row = the study's metric set called directly on those features;
- aggregation: the study table = the union of the per-run metric and probe files;
- figures: the points drawn = a groupby written here (nc_limits fig4/fig5, lpc fig3),
  and on hand-built tables whose seeds and diverged run the smoke preset does not have.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

RESULTS = Path("results/smoke")


# ------------------------------------------------------------------------------ helpers
def _sheet(work: Path, study: str) -> tuple[dict, pd.DataFrame]:
    from ncrepro.stages.sheet import read_sheet

    _key, config, sheet = read_sheet(work / RESULTS / "sheets" / f"{study}.json")
    return config, sheet


def _run_studies(work: Path) -> list[str]:
    """Studies with runs in the smoke preset (those with per-run metric files)."""
    return sorted(p.name for p in (work / RESULTS / "metrics").iterdir() if p.is_dir())


def _record(work: Path, study: str, run: str) -> dict:
    return json.loads((work / RESULTS / "runs" / study / run / "run.json").read_text())


def _npz(path: Path) -> dict:
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def _prepared(work: Path, spec: dict, split: str) -> dict:
    return _npz(work / RESULTS / "data" / spec["dataset"]["key"] / f"{split}.npz")


def _class_count(work: Path, spec: dict) -> int:
    """Classes of the task a run trains on, from its view (written out, not imported)."""
    view = spec.get("view", {"kind": "full"})
    if view["kind"] == "superclass":
        return len(view["groups"])
    if view["kind"] == "class_split":
        return len(view["source"])
    manifest = work / RESULTS / "data" / spec["dataset"]["key"] / "manifest.json"
    return len(json.loads(manifest.read_text())["class_names"])


def _view_labels(view: dict, labels: np.ndarray) -> np.ndarray:
    """Prepared labels -> the labels of the run's pretraining task."""
    if view["kind"] == "superclass":
        table = {c: g for g, group in enumerate(view["groups"]) for c in group}
    elif view["kind"] == "class_split":
        table = {c: i for i, c in enumerate(view["source"])}
    else:
        return labels
    return np.array([table[int(c)] for c in labels], dtype=np.int64)


def _test_rows(view: dict, labels: np.ndarray) -> np.ndarray:
    """Rows of the prepared test split a run is scored on."""
    kind = view["kind"]
    if kind in ("full", "subset"):  # subset: a train subset, the whole test split
        return np.arange(len(labels))
    if kind == "class_split":
        return np.flatnonzero(np.isin(labels, view["source"]))
    if kind == "superclass" and view["pools"].get("mode") == "first_n":
        # the pretraining pool: the first rows (file order) of the grouped classes
        grouped = np.flatnonzero(np.isin(labels, [c for g in view["groups"] for c in g]))
        return grouped[: view["pools"]["test"][0]]
    raise AssertionError(f"no expected test rows written for view {view}: add them here")


def _feature_runs(work: Path) -> list[tuple[str, str]]:
    """(study, run) of every run whose feature files the smoke run kept."""
    root = work / RESULTS / "features"
    return sorted((s.name, r.name) for s in root.iterdir() for r in s.iterdir() if r.is_dir())


def _sort_key(value) -> str:
    """One cell as text, the same for 4, 4.0 and np.int64(4) (dtypes differ after a
    concat or merge) and for None and NaN."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return repr(float(value))
    return "nan" if value is None else str(value)


def _canonical(frame: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Rows in an order fixed by their content (all columns, or `by`), columns sorted."""
    frame = frame.reset_index(drop=True)
    frame = frame[sorted(frame.columns)]
    rows = frame[by or list(frame.columns)].itertuples(index=False)
    keys = ["|".join(map(_sort_key, row)) for row in rows]
    return frame.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)


# ----------------------------------------------------------------------- feature rows
@pytest.mark.slow
def test_feature_rows_and_labels_are_the_runs_view(smoke_run):
    """Every kept feature file, every step: rows (`index`) = the run's view of the
    prepared split (train: its train_index.npy; test: the view's test rows) and labels =
    the prepared labels there through the view's relabelling; train and test not swapped."""
    work = smoke_run
    runs = _feature_runs(work)
    # every study with runs kept its feature files (--notemp)
    assert {s for s, _ in runs} == set(_run_studies(work))
    checked = 0
    for study, run in runs:
        record = _record(work, study, run)
        spec = record["spec"]
        view = spec.get("view", {"kind": "full"})
        train_index = np.load(work / RESULTS / "runs" / study / run / "train_index.npy")
        prepared = {split: _prepared(work, spec, split) for split in ("train", "test")}
        if view["kind"] == "full":
            assert np.array_equal(train_index, np.arange(len(prepared["train"]["labels"])))
        expected = {"train": train_index, "test": _test_rows(view, prepared["test"]["labels"])}
        features = work / RESULTS / "features" / study / run
        steps = [c["step"] for c in record["checkpoints"]]
        kept = sorted(p.name for p in features.iterdir() if p.is_dir())
        assert kept == sorted(f"step{s}" for s in steps), f"{study}/{run}"
        for step in steps:
            for split, rows in expected.items():
                f = _npz(features / f"step{step}" / f"{split}.npz")
                where = f"{study}/{run} step {step} {split}"
                assert np.array_equal(f["index"], rows), where
                labels = _view_labels(view, prepared[split]["labels"][rows])
                assert np.array_equal(f["labels"], labels), where
                assert f["features"].shape[0] == len(rows), where
                if "logits" in f:
                    assert f["logits"].shape == (len(rows), _class_count(work, spec)), where
                checked += 1
    assert checked >= 2 * 3 * 2  # nc_limits alone: 2 runs x 3 steps x 2 splits


# --------------------------------------------------------------------- feature values
def _normalised(images: np.ndarray, train_images: np.ndarray, kind: str) -> np.ndarray:
    """Standardisation with statistics of the run's own train images (pixel / channel /
    none), written out here independently of ncrepro.train.device_data.Normalizer."""
    x = train_images.astype(np.float64) / 255.0
    if kind == "pixel":
        mean, std = x.mean(axis=0), x.std(axis=0)
    elif kind == "channel":
        mean = x.mean(axis=(0, 2, 3))[:, None, None]
        std = x.std(axis=(0, 2, 3))[:, None, None]
    else:
        assert kind == "none", kind
        mean, std = 0.0, 1.0
    std = np.where(std < 1e-8, 1.0, std)  # constant pixels
    return ((images.astype(np.float64) / 255.0 - mean) / std).astype(np.float32)


def _checkpoint_model(work: Path, study: str, run: str, entry: dict, spec: dict):
    """The model of checkpoint `entry`: built from the spec, weights from torch.load."""
    import torch

    from ncrepro.models import build_model

    image_shape = _prepared(work, spec, "train")["images"].shape[1:]
    model = build_model(
        spec["arch"],
        num_classes=_class_count(work, spec),
        in_channels=image_shape[0],
        image_size=image_shape[1],
        width=spec["width"],
        head=spec.get("head"),
        classifier=spec.get("classifier"),
        **spec.get("arch_params", {}),
    )
    path = work / RESULTS / "runs" / study / run / entry["file"]
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def _check_checkpoint_features(work: Path, study: str, run: str) -> None:
    """Six spot rows of each split at every step of `run` = the penultimate layer (and
    logits) of that step's checkpoint, in eval mode, on the normalised prepared images."""
    import torch

    record = _record(work, study, run)
    spec = record["spec"]
    prepared = {split: _prepared(work, spec, split) for split in ("train", "test")}
    train_index = np.load(work / RESULTS / "runs" / study / run / "train_index.npy")
    kind = spec["training"].get("normalize", "pixel")
    train_images = prepared["train"]["images"][train_index]
    stored = {}
    for entry in record["checkpoints"]:
        model = _checkpoint_model(work, study, run, entry, spec)
        folder = work / RESULTS / "features" / study / run / f"step{entry['step']}"
        for split in ("train", "test"):
            f = _npz(folder / f"{split}.npz")
            spots = np.unique(np.linspace(0, len(f["index"]) - 1, 6).astype(int))
            x = _normalised(prepared[split]["images"][f["index"][spots]], train_images, kind)
            with torch.no_grad():
                h = model.penultimate(torch.from_numpy(x))
                logits = None if model.classifier is None else model.classifier(h).numpy()
            where = f"{study}/{run} step {entry['step']} {split}"
            features = f["features"][spots]
            atol = 1e-5 * max(1.0, float(np.abs(features).max()))
            np.testing.assert_allclose(features, h.numpy(), rtol=0, atol=atol, err_msg=where)
            if logits is not None:
                atol = 1e-5 * max(1.0, float(np.abs(logits).max()))
                np.testing.assert_allclose(
                    f["logits"][spots], logits, rtol=0, atol=atol, err_msg=where
                )
                weight = model.classifier.weight.detach().numpy()
                assert np.array_equal(f["classifier_weight"], weight), where
            stored.setdefault(split, []).append(features)
    # the first and last checkpoints differ on these rows: the check tells steps apart
    for split, (first, *_, last) in stored.items():
        assert np.abs(first - last).max() > 1e-3 * max(1.0, np.abs(last).max()), (run, split)


@pytest.mark.slow
def test_features_are_each_checkpoints_penultimate_layer(smoke_run):
    """Every kept run with two or more checkpoints, every step: a stage that took every
    step's features from one checkpoint (or from the wrong rows) fails."""
    import torch

    work = smoke_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 6: more threads only spin (50x slower on 2 busy cores)
    try:
        checked = set()
        for study, run in _feature_runs(work):
            if len(_record(work, study, run)["checkpoints"]) >= 2:
                _check_checkpoint_features(work, study, run)
                checked.add(study)
    finally:
        torch.set_num_threads(threads)
    assert checked == set(_run_studies(work))


# -------------------------------------------------------------------------------- metrics
@pytest.mark.slow
def test_metric_rows_are_the_metric_set_on_the_features(smoke_run):
    """Every row of every run's metric file = the study's metric set called here on the
    kept feature files, every metric, to 1e-9 (the same computation, its own seed)."""
    from ncrepro.studies import get, load

    work = smoke_run
    for study in _run_studies(work):
        config, sheet = _sheet(work, study)
        metric_set = get(study).metrics
        compute, options = load(metric_set.compute), metric_set.options(config[study])
        for run in sorted(sheet["run"].unique()):
            record = _record(work, study, run)
            spec, expected = record["spec"], []
            num_classes = _class_count(work, spec)
            for entry in record["checkpoints"]:
                folder = work / RESULTS / "features" / study / run / f"step{entry['step']}"
                train, test = _npz(folder / "train.npz"), _npz(folder / "test.npz")
                for row in compute(train, test, num_classes, seed=spec["seed"], **options):
                    expected.append({"run": run, "step": entry["step"], **row})
            if record["status"] == "diverged":
                expected.append(
                    {"run": run, "step": record["final_step"], "split": "train"}
                    | {"metric": "diverged", "value": 1.0}
                )
            expected = pd.DataFrame(expected)
            got = pd.read_parquet(work / RESULTS / "metrics" / study / f"{run}.parquet")
            assert set(got.columns) == {*expected.columns, "code_version_metrics"}, run
            keys = [c for c in expected.columns if c != "value"]
            pd.testing.assert_frame_equal(
                _canonical(got.drop(columns="code_version_metrics"), keys),
                _canonical(expected, keys),
                check_dtype=False,
                rtol=1e-9,
                atol=1e-12,
                obj=f"{study}/{run}",
            )


# ---------------------------------------------------------------------------- aggregate
@pytest.mark.slow
def test_study_table_is_the_union_of_the_per_run_files(smoke_run):
    """tables/<study>.parquet holds, per (experiment, run) of the sheet, exactly the rows
    of that run's metric and probe files with their values, plus the sheet's columns, the
    run record's and epoch; nothing else."""
    work = smoke_run
    for study in _run_studies(work):
        _config, sheet = _sheet(work, study)
        table = pd.read_parquet(work / RESULTS / "tables" / f"{study}.parquet")
        file_columns, total = set(), 0
        for (experiment, run), sheet_rows in sheet.groupby(["experiment", "run"]):
            files = [work / RESULTS / "metrics" / study / f"{run}.parquet"]
            files += sorted((work / RESULTS / "probes" / study / run).rglob("*.parquet"))
            expected = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
            file_columns |= set(expected.columns)
            got = table[(table["experiment"] == experiment) & (table["run"] == run)]
            where = f"{study} {experiment}/{run}"
            assert len(got) == len(expected), where
            pd.testing.assert_frame_equal(
                _canonical(got[list(expected.columns)]),
                _canonical(expected),
                check_dtype=False,
                check_exact=True,
                obj=where,
            )
            [sheet_row] = sheet_rows.to_dict("records")
            record = _record(work, study, run)
            for column, value in sheet_row.items():
                if column == "n_train" and value < 0:  # the full split: from the run
                    value = record["n_train"]
                same = got[column].isna() if pd.isna(value) else got[column] == value
                assert same.all(), (where, column)
            assert (got["status"] == record["status"]).all(), where
            epoch = got["step"] * sheet_row["batch_size"] / got["n_train"]
            np.testing.assert_allclose(got["epoch"], epoch, rtol=1e-12, err_msg=where)
            total += len(expected)
        assert len(table) == total, study
        added = {"status", "final_step", "code_version_train", "epoch", "code_version"}
        assert set(table.columns) == file_columns | set(sheet.columns) | added, study


# ------------------------------------------------------------------------------ figures
def _seed_std(values: pd.Series) -> float:
    """The captions' spread: sample std over seeds (ddof 1); one seed draws no spread."""
    values = values.dropna()
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _errorbar_points(axes) -> pd.DataFrame:
    """(label, x, y, x_std, y_std) of every point drawn by `errorbar`: the data point (the
    bars' centre without a marker) and half the length of each bar (NaN: no bar)."""
    points = []
    for ax in axes:
        for container in ax.containers:
            line, _caps, bars = container.lines
            xbars = bars[0].get_segments() if container.has_xerr else None
            ybars = bars[-1].get_segments() if container.has_yerr else None
            for i in range(len(line.get_xdata()) if line is not None else len(xbars or ybars)):
                points.append(
                    {
                        "label": container.get_label(),
                        "x": line.get_xdata()[i] if line is not None else ybars[i][0][0],
                        "y": line.get_ydata()[i] if line is not None else xbars[i][0][1],
                        "x_std": np.nan if xbars is None else np.ptp(xbars[i][:, 0]) / 2,
                        "y_std": np.nan if ybars is None else np.ptp(ybars[i][:, 1]) / 2,
                    }
                )
    return pd.DataFrame(points)


def _fig4_expected(table: pd.DataFrame) -> pd.DataFrame:
    """fig4 by hand: each run's last checkpoint, diverged runs out, then per
    (dataset, arch, N) the mean and sample std over seeds."""
    rows = table[table["experiment"] == "train_size"]
    picked = {
        "x": ("train_variance", "train"),
        "y": ("strong_test_variance", "test"),
        "acc": ("accuracy", "test"),
    }
    chosen = pd.concat(
        [rows[(rows["metric"] == m) & (rows["split"] == s)] for m, s in picked.values()]
    )
    last = chosen.groupby("run")["step"].max()
    chosen = chosen[chosen["step"] == chosen["run"].map(last)]
    runs = chosen.drop_duplicates("run").set_index("run")[
        ["dataset", "arch", "n_train", "seed", "status"]
    ]
    for name, (metric, split) in picked.items():
        values = chosen[(chosen["metric"] == metric) & (chosen["split"] == split)]
        runs[name] = values.set_index("run")["value"]
    runs = runs[runs["status"] != "diverged"]
    return (
        runs.groupby(["dataset", "arch", "n_train"])
        .agg(
            x=("x", "mean"),
            x_std=("x", _seed_std),
            y=("y", "mean"),
            y_std=("y", _seed_std),
            acc=("acc", "mean"),
        )
        .reset_index()
    )


def _check_fig4(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The points fig4 draws = _fig4_expected (each point's legend label is its N, the
    number above it the mean accuracy); returns them."""
    import matplotlib.pyplot as plt

    from ncrepro.studies.nc_limits.transfer_figures import fig4

    fig, _rows, _caption = fig4(table, config)
    drawn = _errorbar_points(fig.axes)
    texts = sorted(t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    expected = _fig4_expected(table)
    assert len(expected["dataset"].unique()) == 1  # one panel: points are told apart by N
    drawn["n_train"] = drawn["label"].str.replace(",", "").str.extract(r"N = (\d+)")[0]
    drawn = drawn.astype({"n_train": int}).sort_values("n_train").reset_index(drop=True)
    expected = expected.sort_values("n_train").reset_index(drop=True)
    assert drawn["n_train"].tolist() == expected["n_train"].tolist()
    for column in ("x", "y", "x_std", "y_std"):
        np.testing.assert_allclose(drawn[column], expected[column], rtol=1e-12, err_msg=column)
    assert texts == sorted(f"{100 * a:.1f}%" for a in expected["acc"])
    return expected


def _fig5_expected(table: pd.DataFrame) -> pd.DataFrame:
    """fig5 by hand: per (run, step) x = StrongTestVariance, y = the best fine-tuned test
    accuracy over the LRs that did not diverge; per (dataset, arch, step) mean and sample
    std over seeds."""
    rows = table[table["experiment"] == "transfer"]
    x = rows[(rows["metric"] == "strong_test_variance") & (rows["split"] == "test")]
    x = x.set_index(["run", "step"])[["dataset", "arch", "seed", "value"]]
    tuned = rows[(rows["metric"] == "finetune_accuracy") & (rows["split"] == "test")]
    tuned = tuned[(tuned["probe_status"] != "diverged") & np.isfinite(tuned["value"])]
    x["best"] = tuned.groupby(["run", "step"])["value"].max()
    return (
        x.reset_index()
        .groupby(["dataset", "arch", "step"])
        .agg(x=("value", "mean"), x_std=("value", _seed_std), y=("best", "mean"))
        .join(x.reset_index().groupby(["dataset", "arch", "step"])["best"].agg(_seed_std))
        .rename(columns={"best": "y_std"})
        .reset_index()
    )


def _check_fig5(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The points fig5 draws (scatter, coloured by step; error bars) = _fig5_expected."""
    import matplotlib.pyplot as plt

    from ncrepro.studies.nc_limits.transfer_figures import fig5

    fig, _rows, _caption = fig5(table, config)
    [scatter] = [c for ax in fig.axes for c in ax.collections if c.get_label().startswith("fine")]
    offsets, steps = np.asarray(scatter.get_offsets()), np.asarray(scatter.get_array())
    bars = _errorbar_points(fig.axes)
    plt.close(fig)
    expected = _fig5_expected(table).sort_values("step")
    assert len(expected["dataset"].unique()) == 1  # one panel
    assert steps.tolist() == expected["step"].tolist()
    np.testing.assert_allclose(offsets[:, 0], expected["x"], rtol=1e-12)
    np.testing.assert_allclose(offsets[:, 1], expected["y"], rtol=1e-12)
    for column in ("x", "y", "x_std", "y_std"):  # bars drawn in step order
        np.testing.assert_allclose(bars[column], expected[column], rtol=1e-12, atol=1e-15)
    return expected


@pytest.mark.slow
def test_nc_limits_fig4_fig5_points_are_a_groupby_of_the_study_table(smoke_run):
    """On the smoke table: one seed per point (so no spread: see the hand-built tests for
    mean/std over seeds and the diverged run), 2 fig4 points, 2 fig5 checkpoints."""
    config, _sheet_rows = _sheet(smoke_run, "nc_limits")
    table = pd.read_parquet(smoke_run / RESULTS / "tables" / "nc_limits.parquet")
    assert len(_check_fig4(table, config)) == 2
    assert len(_check_fig5(table, config)) == 2


def _row(run, seed, step, split, metric, value, **extra) -> dict:
    base = {"dataset": "digits", "arch": "resnet18", "run": run, "seed": seed, "step": step}
    return {**base, "split": split, "metric": metric, "value": value, **extra}


def test_fig4_points_by_hand_mean_and_sample_std_over_seeds_without_diverged_runs():
    """Two N, seeds 0/1 each, a third seed diverged at N = 100; every run has an earlier
    checkpoint whose values must not count. Points: mean and ddof-1 std over the two
    seeds (the caption's 'mean +/- 1 std (ddof 1)'); not ddof 0."""
    values = {  # (N, seed): (train_variance, strong_test_variance, accuracy)
        (100, 0): (0.5, 2.0, 0.6),
        (100, 1): (0.7, 2.6, 0.7),
        (100, 2): (50.0, 90.0, 0.1),  # diverged
        (200, 0): (0.2, 1.0, 0.8),
        (200, 1): (0.3, 1.6, 0.9),
    }
    rows = []
    for (n, seed), (x, y, acc) in values.items():
        run = f"n{n}-s{seed}"
        extra = {"experiment": "train_size", "n_train": n}
        extra["status"] = "diverged" if seed == 2 else "stopped_on_loss"
        last = 8 + seed  # runs stop at different steps
        for step, scale in ((4, 10.0), (last, 1.0)):
            rows.append(_row(run, seed, step, "train", "train_variance", scale * x, **extra))
            rows.append(_row(run, seed, step, "test", "strong_test_variance", scale * y, **extra))
            rows.append(_row(run, seed, step, "test", "accuracy", acc / scale, **extra))
    table = pd.DataFrame(rows)
    points = _check_fig4(table, {})
    at100 = points[points["n_train"] == 100].iloc[0]
    assert at100["x"] == pytest.approx(0.6) and at100["y"] == pytest.approx(2.3)
    assert at100["x_std"] == pytest.approx(np.sqrt(0.02))  # ddof 1: ((0.1^2)*2/1)^0.5
    assert at100["y_std"] == pytest.approx(np.sqrt(0.18))
    assert at100["x_std"] != pytest.approx(np.std([0.5, 0.7]))  # not ddof 0
    assert at100["acc"] == pytest.approx(0.65)


def test_fig5_points_by_hand_best_lr_mean_and_sample_std_over_seeds():
    """Two seeds x two checkpoints, two LRs each; a diverged fine-tune with a higher
    accuracy must be ignored. y = mean over seeds of the best LR's accuracy."""
    rows = []
    variance = {(0, 4): 3.0, (0, 12): 1.0, (1, 4): 3.4, (1, 12): 1.6}
    accuracy = {  # (seed, step): {lr: (accuracy, probe status)}
        (0, 4): {0.01: (0.50, "completed"), 0.1: (0.60, "completed")},
        (0, 12): {0.01: (0.40, "completed"), 0.1: (0.99, "diverged")},
        (1, 4): {0.01: (0.70, "completed"), 0.1: (0.20, "completed")},
        (1, 12): {0.01: (0.30, "completed"), 0.1: (0.35, "completed")},
    }
    for (seed, step), x in variance.items():
        extra = {"experiment": "transfer", "status": "completed", "view": "superclass"}
        run = f"s{seed}"
        rows.append(_row(run, seed, step, "test", "strong_test_variance", x, **extra))
        for lr, (acc, status) in accuracy[seed, step].items():
            probe = {"probe": "finetune", "probe_lr": lr, "probe_status": status}
            rows.append(_row(run, seed, step, "test", "finetune_accuracy", acc, **extra, **probe))
    points = _check_fig5(pd.DataFrame(rows), {}).set_index("step")
    assert points.loc[4, "y"] == pytest.approx(0.65)  # best of seed 0: 0.6, of seed 1: 0.7
    assert points.loc[12, "y"] == pytest.approx(0.375)  # 0.99 diverged: 0.4 and 0.35
    assert points.loc[12, "y_std"] == pytest.approx(np.std([0.4, 0.35], ddof=1))
    assert points.loc[4, "x_std"] == pytest.approx(np.std([3.0, 3.4], ddof=1))


def _lpc_fig3_expected(table: pd.DataFrame) -> pd.DataFrame:
    """lpc fig3 by hand: per (section, model, seed) the run of the LR grid with the best
    final test accuracy (diverged runs never; ties to the smaller LR), its last separation
    ratio (train) and DeepFool robustness (test); mean and sample std over seeds (NaN for
    one seed: no bar)."""
    accuracy = table[(table["metric"] == "accuracy") & (table["split"] == "test")]
    last = accuracy.groupby("run")["step"].max()
    final = accuracy[(accuracy["step"] == accuracy["run"].map(last))]
    final = final[final["status"] != "diverged"].drop_duplicates("run")
    best = final.sort_values(["value", "lr"], ascending=[False, True])
    best = best.groupby(["paper_dataset", "model", "seed"]).head(1).copy()
    for name, (metric, split) in {
        "sep": ("separation_ratio", "train"),
        "rob": ("deepfool_robustness", "test"),
    }.items():
        rows = table[(table["metric"] == metric) & (table["split"] == split)]
        rows = rows[rows["step"] == rows.groupby("run")["step"].transform("max")]
        best[name] = best["run"].map(rows.drop_duplicates("run").set_index("run")["value"])

    def std(values):
        return float(np.std(values, ddof=1)) if len(values) > 1 else np.nan

    return (
        best.groupby(["paper_dataset", "model"])
        .agg(sep=("sep", "mean"), sep_std=("sep", std), rob=("rob", "mean"), rob_std=("rob", std))
        .reset_index()
    )


def _check_lpc_fig3(table: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Each model's point in lpc fig3 (found by its name, drawn beside it) =
    _lpc_fig3_expected."""
    import matplotlib.pyplot as plt

    from ncrepro.studies.lpc.figures import fig3

    fig, _rows, _caption = fig3(table, config)
    drawn = []
    for ax in fig.axes:
        bars = _errorbar_points([ax])
        for text, (_, bar) in zip(ax.texts, bars.iterrows(), strict=True):
            x, y = text.xy
            assert (x, y) == (bar["x"], bar["y"])  # the name sits on its own point
            drawn.append({"paper_dataset": ax.get_title(), "model": text.get_text()})
            drawn[-1] |= {"sep": x, "rob": y, "sep_std": bar["x_std"], "rob_std": bar["y_std"]}
    plt.close(fig)
    expected = _lpc_fig3_expected(table)
    keys = ["paper_dataset", "model"]
    drawn = pd.DataFrame(drawn).sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(drawn[expected.columns], expected, rtol=1e-12)
    return expected


@pytest.mark.slow
def test_lpc_fig3_points_are_a_groupby_of_the_study_table(smoke_run):
    """On the smoke table (three models, one seed and one LR each), then on the same
    table with a second seed and LR per model, a diverged run that would have won, and
    a tie won by the smaller LR."""
    config, _sheet_rows = _sheet(smoke_run, "lpc")
    table = pd.read_parquet(smoke_run / RESULTS / "tables" / "lpc.parquet")
    points = _check_lpc_fig3(table, config)
    assert len(points) == 3 and points["sep_std"].isna().all()

    copies = []
    for seed, lr, status, shift in (
        (1, 0.003, "completed", 0.5),  # seed 1, LR 0.003: same final accuracy as below
        (1, 0.001, "completed", 0.25),  # seed 1, LR 0.001: wins the tie
        (0, 0.01, "diverged", 1.0),  # would win on accuracy: never selected
    ):
        extra = table.copy()
        extra["run"] = extra["run"] + f"-s{seed}-lr{lr}"
        extra["seed"], extra["lr"], extra["status"] = seed, lr, status
        values = extra["metric"].isin(["separation_ratio", "deepfool_robustness"])
        extra.loc[values, "value"] *= 1 + shift
        if status == "diverged":
            extra.loc[extra["metric"] == "accuracy", "value"] = 1.0
        copies.append(extra)
    table = pd.concat([table, *copies], ignore_index=True)
    points = _check_lpc_fig3(table, config).set_index("model")
    original = _lpc_fig3_expected(table[table["seed"] == 0]).set_index("model")
    # seeds 0 (the smoke run) and 1 (its x1.25 copy): mean x1.125, sample std
    np.testing.assert_allclose(points["sep"], 1.125 * original["sep"], rtol=1e-12)
    np.testing.assert_allclose(points["sep_std"], np.std([1, 1.25]) * np.sqrt(2) * original["sep"])
