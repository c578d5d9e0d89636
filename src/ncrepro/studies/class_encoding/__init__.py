"""class_encoding: Massion, Makhlouf, Massart (2026), "The role of class encoding in
neural collapse" — the unconstrained-features model (MSE) solved to global optimality,
numerics beside the paper's closed forms. No runs: the study table is computed directly."""

from ncrepro.studies import Figure, Study, Table

_FIGURES = "ncrepro.studies.class_encoding.figures"

STUDY = Study(
    key="class_encoding",
    paper="Massion, Makhlouf, Massart (2026), The role of class encoding in neural collapse",
    compute_table="ncrepro.studies.class_encoding.solve:run_study",
    figures={
        "fig1": Figure(f"{_FIGURES}:fig_frames"),
        "transition": Figure(f"{_FIGURES}:fig_transition"),
        "encodings": Figure(f"{_FIGURES}:fig_encodings"),
    },
    tables={
        "encodings": Table(f"{_FIGURES}:encodings_table"),
        "claims": Table("ncrepro.studies.class_encoding.claims:claims_table"),
    },
)
