"""nc_limits: Hui, Belkin, Nakkiran (2022), "Limitations of Neural Collapse for
Understanding Generalization in Deep Learning" — figures 1-5 and the claims table."""

from ncrepro.studies import Figure, MetricSet, Study, Table
from ncrepro.studies.nc_limits.runs import check_config, runs

_FIGURES = "ncrepro.studies.nc_limits.figures"
_TRANSFER = "ncrepro.studies.nc_limits.transfer_figures"

STUDY = Study(
    key="nc_limits",
    paper="Hui, Belkin, Nakkiran (2022), Limitations of Neural Collapse for Understanding "
    "Generalization in Deep Learning",
    runs=runs,
    check_config=check_config,
    # Hui et al.'s variances plus Papyan's NC1-NC4, CDNV, accuracy and loss, every checkpoint
    metrics=MetricSet(
        compute="ncrepro.metrics.compute:compute_all",
        options=lambda block: {"kmeans_n_init": block.get("metrics", {}).get("kmeans_n_init", 4)},
    ),
    figures={
        "fig1": Figure(f"{_FIGURES}:fig1", ("curves",)),
        "fig2": Figure(f"{_FIGURES}:fig2", ("curves",)),
        "fig3": Figure(f"{_FIGURES}:fig_grid", ("grid",)),
        "fig4": Figure(f"{_TRANSFER}:fig4", ("train_size",)),
        "fig5": Figure(f"{_TRANSFER}:fig5", ("transfer",)),
    },
    tables={"claims": Table("ncrepro.studies.nc_limits.claims:claims_table")},
)
