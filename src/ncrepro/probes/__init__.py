"""Transfer probes of pretrained representations (Hui, Belkin, Nakkiran 2022, §4).

- `finetune_probe`: copy the model, new seeded head, train all weights (the paper's
  fine-tuning scheme, appendix B); test accuracy.
- `linear_probe`: multinomial logistic regression (or closed-form ridge) on frozen,
  standardized penultimate features (`extract_features`).
- `lr_sweep`: run a probe over LRs, best = max test accuracy, diverged LRs ignored,
  ties to the smaller LR; `sweep_rows` turns a sweep into long-table rows.

Lemma 1 (a fully collapsed binary representation caps 2k-way accuracy at 1/k) is
checked against all of these in tests/test_probes.py.
"""

from ncrepro.probes.finetune import extract_features, feature_dim, finetune_probe
from ncrepro.probes.linear import linear_probe
from ncrepro.probes.sweep import lr_sweep, select_best, sweep_rows

__all__ = [
    "extract_features",
    "feature_dim",
    "finetune_probe",
    "linear_probe",
    "lr_sweep",
    "select_best",
    "sweep_rows",
]
