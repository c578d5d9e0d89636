"""gc_transfer: Munn, Dherin & Gonzalvo (2024), "The Impact of Geometric Complexity on
Neural Collapse in Transfer Learning" — figures 1-11 and the claims table.

Runs: sweeps of learning rate, batch size and L2 (and the GC-penalty rate, fig11) per
(dataset, architecture) pair (`runs`). Per checkpoint: CDNV, NCC test error, accuracy and
loss from the feature files (`metric_set`); GC, logit GC and geometric collapse from the
model (probe "geometric"); few-shot transfer on held-out classes (probe "fewshot"); the
estimator study of Figure 2 (probe "gc_sampling") and the bound of Figure 3 (this study's
stage "gc_bound", which needs every fig1 run for the Poincaré constant).
"""

from ncrepro.studies import Figure, MetricSet, Study, Table
from ncrepro.studies.gc_transfer.runs import check_config, experiments, runs

_FIGURES = "ncrepro.studies.gc_transfer.figures"

STUDY = Study(
    key="gc_transfer",
    paper="Munn, Dherin, Gonzalvo (2024), The Impact of Geometric Complexity on Neural "
    "Collapse in Transfer Learning",
    runs=runs,
    check_config=check_config,
    metrics=MetricSet(compute="ncrepro.studies.gc_transfer.metric_set:compute"),
    figures={
        fig: Figure(f"{_FIGURES}:{fig}", experiments(pair))
        for fig, pair in (
            ("fig1", "fig1"),
            ("fig2", "fig1"),  # the gc_sampling probe of fig3's run
            ("fig3", "fig1"),  # fig3's run and the Poincare constant of every fig1 run
            ("fig4", "fig4"),
            ("fig5", "fig1"),  # learning curves of fig1's runs
            ("fig6", "fig6"),
            ("fig7", "fig7"),
            ("fig8", "fig8"),
            ("fig9", "fig9"),
            ("fig10", "fig10"),
            ("fig11", "fig11"),
        )
    },
    tables={"claims": Table("ncrepro.studies.gc_transfer.claims:claims_table")},
    stages={"gc_bound": "ncrepro.studies.gc_transfer.bound:gc_bound_rows"},
)
