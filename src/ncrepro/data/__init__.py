"""Datasets for ncrepro: bundled (`digits`), generated (`synth`) and real ones read from
`data.root` in torchvision's on-disk layouts (mnist, fashion_mnist, cifar10, cifar100,
svhn, stl10).

* `load_split(name, split, root=..., download=..., **params) -> RawSplit`
* `prepare(...)` writes {train,test}.npz (images uint8 N×C×H×W, labels int64, index
  int64 = rows in the source split) + manifest.json; `load_prepared` reads them back
  after checking sha256.
* views (pure, seeded, on index arrays): `balanced_subset`, `relabel`, `disjoint_pools`.
"""

from ncrepro.data.errors import CorruptDataError, DatasetMissingError
from ncrepro.data.load import SPLITS, load_split
from ncrepro.data.prepared import FORMAT_VERSION, load_prepared, prepare
from ncrepro.data.registry import DATASETS, DatasetInfo, RawSplit
from ncrepro.data.synth import superclass_groups, superclass_of
from ncrepro.data.views import balanced_subset, disjoint_pools, relabel

__all__ = [
    "DATASETS",
    "FORMAT_VERSION",
    "SPLITS",
    "CorruptDataError",
    "DatasetInfo",
    "DatasetMissingError",
    "RawSplit",
    "balanced_subset",
    "disjoint_pools",
    "load_prepared",
    "load_split",
    "prepare",
    "relabel",
    "superclass_groups",
    "superclass_of",
]
