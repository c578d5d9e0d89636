"""lpc: Sbailò & Ghiringhelli, "Latent Point Collapse on a Low Dimensional Embedding in
Deep Neural Network Classifiers" — eleven models (a linear penultimate layer with a
strong L2 penalty, its ablations and SupCon/ArcFace/CosFace baselines) on two datasets:
tables 1, 2 and 4, figures 1, 3, 4 and 5, and the claims table.

Runs (`runs.py`): model x dataset x LR x seed, the best LR per seed by final test
accuracy (`report.py`); metrics at every checkpoint (`metric_set.py`); DeepFool at the
last checkpoint (the shared probe "deepfool"); fig1's 2-d toy is the study stage "toy"
(`toy.py`), whose output the figure declares as its input.
"""

from ncrepro.studies import Figure, MetricSet, Study, Table
from ncrepro.studies.lpc.runs import EXPERIMENT, check_config, metric_options, runs

_FIGURES = "ncrepro.studies.lpc.figures"
_TABLES = "ncrepro.studies.lpc.tables"
# fig1's toy, at the paper's own scale in every preset, computed by the
# study stage "toy" (rule lpc_toy in workflow/rules/studies/lpc.smk).
TOY_LATENTS = "{results}/tables/lpc/toy_latents.parquet"

STUDY = Study(
    key="lpc",
    paper="Sbailò, Ghiringhelli, Latent Point Collapse on a Low Dimensional Embedding in "
    "Deep Neural Network Classifiers",
    runs=runs,
    check_config=check_config,
    metrics=MetricSet(compute="ncrepro.studies.lpc.metric_set:compute", options=metric_options),
    figures={
        "fig1": Figure(f"{_FIGURES}:fig1", (), {"toy": TOY_LATENTS}),  # reads no run
        "fig3": Figure(f"{_FIGURES}:fig3", (EXPERIMENT,)),
        "fig4": Figure(f"{_FIGURES}:fig4", (EXPERIMENT,)),
        "fig5": Figure(f"{_FIGURES}:fig5", (EXPERIMENT,)),
    },
    tables={
        "table1": Table(f"{_TABLES}:table1"),
        "table2": Table(f"{_TABLES}:table2"),
        "table4": Table(f"{_TABLES}:table4", {"published": "published/lpc.csv"}),
        "claims": Table("ncrepro.studies.lpc.claims:claims_table"),
    },
    stages={"toy": "ncrepro.studies.lpc.toy:toy_latents"},
)
