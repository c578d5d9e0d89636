"""`RawSplit` and the `DATASETS` registry (shapes, classes, where the files live)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ncrepro.data import imagenet32


@dataclass
class RawSplit:
    """One split: images uint8 N×C×H×W, labels int64 N, class names, and `index`
    (int64 N, the row of each sample in the source split)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    index: np.ndarray | None = None

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.labels), dtype=np.int64)
        if not (len(self.images) == len(self.labels) == len(self.index)):
            raise ValueError("images, labels and index must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset. `kind`: "bundled" (ships with a library),
    "generated" (procedural, no files) or "root" (files under data.root, in
    `folder`, which is relative to data.root; "" = data.root itself)."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    class_names: tuple[str, ...]
    kind: str
    folder: str | None = None
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # split -> files
    params: tuple[str, ...] = ()  # accepted params (load_split keyword arguments)

    @property
    def needs_root(self) -> bool:
        return self.kind == "root"


DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_NAMES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())
CIFAR100_NAMES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge
    bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud
    cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl
    hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man
    maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road
    rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
    sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
    turtle wardrobe whale willow_tree wolf woman worm""".split()
)
CIFAR100_COARSE_NAMES = tuple(
    """aquatic_mammals fish flowers food_containers fruit_and_vegetables
    household_electrical_devices household_furniture insects large_carnivores
    large_man-made_outdoor_things large_natural_outdoor_scenes
    large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people
    reptiles small_mammals trees vehicles_1 vehicles_2""".split()
)
STL10_NAMES = tuple("airplane bird car cat deer dog horse monkey ship truck".split())
SYNTH_NAMES = tuple(f"class{i}" for i in range(10))  # default num_classes=10

SUBSAMPLE = ("n_train_per_class", "n_test_per_class", "seed")
SYNTH_PARAMS = (
    "num_classes",
    "num_superclasses",
    "n_train_per_class",
    "n_test_per_class",
    "seed",
    "modes",
    "superclass_weight",
    "shift",
    "difficulty",
    "nuisance",
    "noise",
    "image_size",  # default 32; the lpc quick preset uses 16 (a step costs ~1/3)
)


def _mnist_files() -> dict[str, tuple[str, ...]]:
    return {
        split: (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", 1, 8, 10, DIGIT_NAMES, "bundled", params=("test_fraction", "seed")),
        DatasetInfo("synth", 3, 32, 10, SYNTH_NAMES, "generated", params=SYNTH_PARAMS),
        DatasetInfo(
            "mnist", 1, 28, 10, DIGIT_NAMES, "root", "MNIST/raw", _mnist_files(), SUBSAMPLE
        ),
        DatasetInfo(
            "fashion_mnist",
            1,
            28,
            10,
            FASHION_NAMES,
            "root",
            "FashionMNIST/raw",
            _mnist_files(),
            SUBSAMPLE,
        ),
        DatasetInfo(
            "cifar10",
            3,
            32,
            10,
            CIFAR10_NAMES,
            "root",
            "cifar-10-batches-py",
            {
                "train": (*(f"data_batch_{i}" for i in range(1, 6)), "batches.meta"),
                "test": ("test_batch", "batches.meta"),
            },
            SUBSAMPLE,
        ),
        DatasetInfo(
            "cifar100",
            3,
            32,
            100,
            CIFAR100_NAMES,
            "root",
            "cifar-100-python",
            {"train": ("train", "meta"), "test": ("test", "meta")},
            (*SUBSAMPLE, "label_type", "resplit_test_fraction"),
        ),
        DatasetInfo(
            "svhn",
            3,
            32,
            10,
            DIGIT_NAMES,
            "root",
            "",
            {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
            SUBSAMPLE,
        ),
        DatasetInfo(  # read by ncrepro.data.imagenet32 (batch-file layout)
            imagenet32.NAME,
            3,
            32,
            imagenet32.NUM_CLASSES,
            imagenet32.CLASS_NAMES,
            "root",
            imagenet32.FOLDER,
            dict(imagenet32.FILES),
            SUBSAMPLE,
        ),
        DatasetInfo(
            "stl10",
            3,
            96,
            10,
            STL10_NAMES,
            "root",
            "stl10_binary",
            {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin")},
            SUBSAMPLE,
        ),
        DatasetInfo(  # class names (WordNet ids) come from the CSVs: ncrepro.data.miniimagenet
            "miniimagenet",
            3,
            84,
            100,
            (),
            "root",
            "mini-imagenet",
            {s: ("train.csv", "val.csv", "test.csv") for s in ("train", "test")},
            ("test_fraction", "seed", "csv_splits", "image_size"),
        ),
    )
}
