"""Unconstrained features model (MSE) with bias: global solver, theory and NC metrics.

Reproduces "The role of class encoding in neural collapse" (Massion, Makhlouf & Massart):
Theorem III.1 (one-hot, bias transition OF -> simplex ETF), Theorem III.4 (bias centres the
labels), Theorem IV.1 (NC1 for any encoding), Proposition IV.3 (rotated labels break NC3),
Theorem IV.4 (NC3' always holds).
"""

from .experiments import (
    ENCODINGS,
    UFMSpec,
    make_encoding,
    make_labels,
    random_orthogonal,
    sweep_frame,
    sweep_rows,
)
from .metrics import (
    assignment_matrix,
    centered_means,
    class_means,
    fitted_kappa,
    nc1,
    nc2,
    nc3,
    nc3_prime,
    within_class_scatter,
)
from .solver import (
    UFMSolution,
    balanced_factors,
    gradient_descent,
    gradients,
    kkt_diagnostics,
    objective,
    solve,
)
from .theory import (
    c_constant,
    critical_lambda_b,
    fit_ssetf,
    label_smoothing_ssetf,
    ssetf_matrix,
    theory_bias,
    theory_gram,
    theory_gram_coefficients,
    theory_kappa,
    theory_nc3,
    theory_objective,
    theory_ssetf,
    two_level_solution,
)

__all__ = [
    "ENCODINGS",
    "UFMSpec",
    "UFMSolution",
    "assignment_matrix",
    "balanced_factors",
    "c_constant",
    "centered_means",
    "class_means",
    "critical_lambda_b",
    "fit_ssetf",
    "fitted_kappa",
    "gradient_descent",
    "gradients",
    "kkt_diagnostics",
    "label_smoothing_ssetf",
    "make_encoding",
    "make_labels",
    "nc1",
    "nc2",
    "nc3",
    "nc3_prime",
    "objective",
    "random_orthogonal",
    "solve",
    "ssetf_matrix",
    "sweep_frame",
    "sweep_rows",
    "theory_bias",
    "theory_gram",
    "theory_gram_coefficients",
    "theory_kappa",
    "theory_nc3",
    "theory_objective",
    "theory_ssetf",
    "two_level_solution",
    "within_class_scatter",
]
