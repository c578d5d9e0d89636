"""ib_supcon: Wang & Palmer, "Towards understanding neural collapse in supervised
contrastive learning with the information bottleneck method" — two independently trained
SupCon encoders per dataset, their linear identifiability (CCA), the Gaussian information
bottleneck between their rank-transformed representations, ETF signatures, zero-shot
transfer: tables 1-3, figures 2-4 and the claims table."""

from ncrepro.studies import Figure, MetricSet, Study, Table
from ncrepro.studies.ib_supcon.runs import check_config, runs

_FIGURES = "ncrepro.studies.ib_supcon.figures"
_TABLES = "ncrepro.studies.ib_supcon.tables"
PUBLISHED = {"published": "published/ib_supcon.csv"}

STUDY = Study(
    key="ib_supcon",
    paper="Wang, Palmer, Towards understanding neural collapse in supervised contrastive "
    "learning with the information bottleneck method",
    runs=runs,
    check_config=check_config,
    # per run, from the feature files (the projection head's output of these encoders):
    # NC1 and the ETF signatures; the analyses of the paper run in the pair stage
    metrics=MetricSet(
        compute="ncrepro.metrics.etf:etf_metrics",
        options=lambda block: {"representation": "projection_head"},
    ),
    figures={
        "fig2": Figure(f"{_FIGURES}:fig2", ("in_domain",)),
        "fig3": Figure(f"{_FIGURES}:fig3", ("in_domain",)),
        "fig4": Figure(f"{_FIGURES}:fig4", ("in_domain", "zero_shot")),
    },
    tables={
        "table1": Table(f"{_TABLES}:table1", PUBLISHED),
        "table2": Table(f"{_TABLES}:table2", PUBLISHED),
        "table3": Table(f"{_TABLES}:table3", PUBLISHED),
        "claims": Table("ncrepro.studies.ib_supcon.claims:claims_table"),
    },
    stages={"pair": "ncrepro.studies.ib_supcon.pair:pair_stage"},
)
