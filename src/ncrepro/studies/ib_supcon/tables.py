"""ib_supcon tables 1-3 (Wang & Palmer), each number beside the one the paper reports
(published/ib_supcon.csv). All values are test accuracies in % at the last checkpoint of
a pair (Table 1 "both": % of test samples both models classify correctly).

Rows are matched with the paper's by name without the dimension in brackets: the paper
writes "raw (2048D)", this run "raw (64D)" for a 64-d stand-in; `dims (paper)` and
`dims (this run)` keep both.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from ncrepro.claims import disabled_reason
from ncrepro.published import load_published
from ncrepro.studies import TableOutput
from ncrepro.studies.ib_supcon import select as sel
from ncrepro.studies.ib_supcon.runs import STUDY

COLUMNS = [
    "table",
    "row",
    "column",
    "published",
    "reproduced",
    "difference",
    "dims (paper)",
    "dims (this run)",
    "this run",
    "unit",
]
MARKDOWN = ["row", "column", "published", "reproduced", "difference", "dims (this run)", "this run"]


def _published(config: dict, table: str) -> pd.DataFrame:
    path = (config.get("inputs") or {}).get("published")
    frame = load_published("ib_supcon", path.parent) if path else load_published("ib_supcon")
    frame = frame[frame["table"] == table].copy()
    return frame


def _split_dims(name: str) -> tuple[str, str]:
    """("raw", "2048") from "raw (2048D)"; (name, "") without brackets."""
    match = re.match(r"^(.*?)\s*\((\d+)D\)$", str(name))
    return (match.group(1), match.group(2)) if match else (str(name), "")


def _join(reproduced: list[dict], published: pd.DataFrame, *, dims_in: str) -> pd.DataFrame:
    """Reproduced cells {table, key, column, value, dims, this run, unit} beside the
    published ones; the key strips the "(nD)" of the published row (dims_in "row") or
    column (dims_in "column") name."""
    pub = []
    for _, r in published.iterrows():
        name = r[dims_in]
        key, dims = _split_dims(name)
        pub.append(
            {
                "table": r["table"],
                "row": key if dims_in == "row" else r["row"],
                "column": key if dims_in == "column" else r["column"],
                "published": float(r["value"]),
                "dims (paper)": dims,
                "unit": r["unit"],
            }
        )
    pub = pd.DataFrame(pub, columns=["table", "row", "column", "published", "dims (paper)", "unit"])
    rep = pd.DataFrame(
        reproduced,
        columns=["table", "row", "column", "reproduced", "dims (this run)", "this run", "unit"],
    )
    merged = pub.merge(rep, on=["table", "row", "column"], how="outer", suffixes=("", "_run"))
    merged["unit"] = merged["unit"].fillna(merged.pop("unit_run"))
    merged["difference"] = merged["reproduced"] - merged["published"]
    for column in ("dims (paper)", "dims (this run)", "this run"):
        merged[column] = merged[column].fillna("")
    return merged[COLUMNS].reset_index(drop=True)


def _stand_in(config: dict, dataset: str, d: int) -> str:
    source = config["datasets"].get(dataset, {}).get("source", "?")
    return f"{dataset} ({source}), {d}-d representation" if d > 0 else f"{dataset} ({source})"


def _dims_text(d) -> str:
    return "" if d is None or (isinstance(d, float) and math.isnan(d)) or d < 0 else str(int(d))


def _note(config: dict, extra: str) -> str:
    block = config["ib_supcon"]
    t = block["training"]
    return (
        f"Preset '{config['preset']}'. Linear evaluation: logistic regression (C = 1) on the "
        "standardized frozen backbone representation, fitted on the train split, test accuracy "
        f"at each pair's last checkpoint. Encoders: {block['arch']} at width {block['width']}, "
        f"SupCon (temperature {block['objective']['temperature']}), batch {t['batch_size']}, "
        f"{t['steps']} steps, LR {block['lr']}, augment {t['augment']}. {extra}"
    ).strip()


def _zero_shot_off(config: dict, cells: str) -> str:
    """The note's opening when the zero-shot pair is switched off: its `cells` are empty
    and why."""
    off = disabled_reason(config, STUDY, sel.ZERO_SHOT)
    return f"Not filled in this run ({cells}): {off}; its claims are not testable. " if off else ""


def table1(table: pd.DataFrame, config: dict) -> TableOutput:
    """Test accuracy of model 1, model 2 and the fraction both classify correctly."""
    cells = []
    used = []
    for experiment in (sel.IN_DOMAIN, sel.ZERO_SHOT):
        rows = sel.pair_rows(table, experiment, sel.OWN)
        for p in sel.pairs(rows):
            step = p["final_step"]
            values = {
                "model 1": sel.value(
                    rows, p["run"], step, "linear_accuracy", model=1, representation=sel.RAW
                ),
                "model 2": sel.value(
                    rows, p["run"], step, "linear_accuracy", model=2, representation=sel.RAW
                ),
                "both": sel.value(rows, p["run"], step, "both_correct"),
            }
            for row, v in values.items():
                cells.append(
                    {
                        "table": "Table 1",
                        "row": row,
                        "column": p["paper_dataset"],
                        "reproduced": 100 * v,
                        "dims (this run)": _dims_text(p["d"]),
                        "this run": _stand_in(config, p["dataset"], p["d"]) + f", step {step}",
                    }
                )
            used.append(rows[(rows["run"] == p["run"]) & (rows["step"] == step)])
    frame = _join(cells, _published(config, "Table 1"), dims_in="row")
    source_paper = ((config[STUDY].get("zero_shot") or {}).get("source") or {}).get("paper", "")
    order = {"model 1": 0, "model 2": 1, "both": 2}
    frame = (
        frame.assign(_o=frame["row"].map(order)).sort_values(["column", "_o"]).drop(columns="_o")
    )
    return TableOutput(
        frame=frame.reset_index(drop=True),
        title="ib_supcon Table 1: test accuracy of two SupCon models trained in parallel (%)",
        note=_zero_shot_off(config, f"the zero-shot source column {source_paper}")
        + _note(config, "`both`: % of test samples both models classify correctly."),
        markdown_columns=MARKDOWN,
        rows=pd.concat(used) if used else None,
    )


def table2(table: pd.DataFrame, config: dict) -> TableOutput:
    """Linear test accuracy from the raw, ranked and ranked K-dim IB representations."""
    rows = sel.pair_rows(table, sel.IN_DOMAIN, sel.OWN)
    cells, used = [], []
    for p in sel.pairs(rows):
        step, run = p["final_step"], p["run"]
        k = sel.ib_dims(rows, run, step)
        stand_in = _stand_in(config, p["dataset"], p["d"]) + f", step {step}"
        for name, representation, dims in (
            ("raw", sel.RAW, p["d"]),
            ("ranked", sel.RANKED, p["d"]),
            ("ranked K-IB", sel.IB, k),
        ):
            v = sel.value(
                rows, run, step, "linear_accuracy", model=1, representation=representation
            )
            cells.append(
                {
                    "table": "Table 2",
                    "row": name,
                    "column": p["paper_dataset"],
                    "reproduced": 100 * v,
                    "dims (this run)": _dims_text(dims),
                    "this run": stand_in,
                }
            )
        used.append(rows[(rows["run"] == run) & (rows["step"] == step)])
    frame = _join(cells, _published(config, "Table 2"), dims_in="row")
    order = {"raw": 0, "ranked": 1, "ranked K-IB": 2}
    frame = (
        frame.assign(_o=frame["row"].map(order)).sort_values(["column", "_o"]).drop(columns="_o")
    )
    ridge = config["ib_supcon"]["analysis"].get("ridge", 0)
    return TableOutput(
        frame=frame.reset_index(drop=True),
        title="ib_supcon Table 2: linear test accuracy from the raw, rank-transformed and "
        "K-dim IB representations of model 1 (%)",
        note=_note(
            config,
            "Ranked: z = Phi^-1(rank/(N+1)) per coordinate, fitted on train. K-IB: the "
            "Gaussian IB of model 1's ranked representation about model 2's, fitted on the "
            f"train split (covariance ridge {ridge:g} x mean variance), its K leading "
            "directions (alpha_i in the beta -> infinity limit); K = the dataset's classes.",
        ),
        markdown_columns=MARKDOWN,
        rows=pd.concat(used) if used else None,
    )


def table3(table: pd.DataFrame, config: dict) -> TableOutput:
    """Zero-shot: raw, ranked and K'-dim IB accuracy of the source models on the target."""
    rows = sel.pair_rows(table, sel.ZERO_SHOT, sel.TARGET)
    zero_shot = config["ib_supcon"].get("zero_shot") or {}
    cells, used = [], []
    for p in sel.pairs(rows):
        step, run = p["final_step"], p["run"]
        kprime = sel.value(rows, run, step, "kprime", representation=sel.IB)
        target = zero_shot.get("target", {}).get("paper", p["eval_dataset"])
        source = zero_shot.get("source", {}).get("paper", p["paper_dataset"])
        stand_in = (
            f"{_stand_in(config, p['eval_dataset'], p['d'])} from models trained on "
            f"{p['dataset']}, step {step}"
        )
        for name, representation, dims in (
            ("raw", sel.RAW, p["d"]),
            ("ranked", sel.RANKED, p["d"]),
            ("IB", sel.IB, kprime),
        ):
            kw = {"dims": dims} if representation == sel.IB else {}
            v = sel.value(
                rows, run, step, "linear_accuracy", model=1, representation=representation, **kw
            )
            cells.append(
                {
                    "table": "Table 3",
                    "row": f"{target} zero-shot from {source}",
                    "column": name,
                    "reproduced": 100 * v,
                    "dims (this run)": _dims_text(dims),
                    "this run": stand_in,
                }
            )
        used.append(rows[(rows["run"] == run) & (rows["step"] == step)])
    frame = _join(cells, _published(config, "Table 3"), dims_in="column")
    order = {"raw": 0, "ranked": 1, "IB": 2}
    frame = frame.assign(_o=frame["column"].map(order)).sort_values("_o").drop(columns="_o")
    tolerance = config["ib_supcon"]["analysis"].get("kprime_tolerance", 0.01)
    return TableOutput(
        frame=frame.reset_index(drop=True),
        title="ib_supcon Table 3: zero-shot transfer, linear test accuracy on the target from "
        "models pretrained on the source (%)",
        note=_zero_shot_off(config, "every cell")
        + _note(
            config,
            "The representations of the target's images through model 1 (ranked: fitted on "
            "the target's train split); IB: the Gaussian IB of model 1 about model 2 on the "
            f"target's train split with K' = the fewest dimensions of the sweep "
            f"{zero_shot.get('dims')} whose accuracy is within {100 * tolerance:g} percentage "
            "points of the best over the sweep (the paper does not say how it chose 70D).",
        ),
        markdown_columns=MARKDOWN,
        rows=pd.concat(used) if used else None,
    )
