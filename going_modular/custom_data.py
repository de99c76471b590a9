# Written by notebooks/04_pytorch_custom_datasets.ipynb: edit the notebook, not this file.
"""A custom Dataset that reads an image-classification folder the way torchvision's ImageFolder does.

The folder holds one subfolder per class; the subfolder's name is the class name:

    train/pizza/0001.jpg
    train/steak/0002.jpg
    train/sushi/0003.png

`ImageFolderCustom(folder, transform)` finds the classes, lists the images in a fixed
(sorted) order and returns `(transform(image), label)` pairs, with the same classes,
labels and order as `torchvision.datasets.ImageFolder(folder, transform)`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

# The file endings ImageFolder accepts (torchvision.datasets.folder.IMG_EXTENSIONS), any case.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = "<folder>/<class_name>/<image>.jpg, e.g. train/pizza/0001.jpg"


def find_classes(directory: str | Path) -> tuple[list[str], dict[str, int]]:
    """Find the class names (the subfolders of `directory`) and number them in sorted order.

    Args:
        directory: A folder laid out as <directory>/<class_name>/<image files>.

    Returns:
        (classes, class_to_idx): the sorted subfolder names, and a dict from each name to its
        index, e.g. (["pizza", "steak"], {"pizza": 0, "steak": 1}).

    Raises:
        FileNotFoundError: `directory` does not exist.
        NotADirectoryError: `directory` is a file.
        ValueError: `directory` has no subfolders, so there are no classes.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(
            f"No folder at {str(directory)!r}. Expected an image folder laid out as {LAYOUT}; "
            "check the path (relative paths start from the notebook's or script's folder)."
        )
    if not directory.is_dir():
        raise NotADirectoryError(f"{str(directory)!r} is a file; pass the folder that holds one subfolder per class.")
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise ValueError(
            f"{str(directory)!r} has no class subfolders. Expected {LAYOUT}: "
            "put the images of each class in a subfolder named after the class."
        )
    class_to_idx = {name: index for index, name in enumerate(classes)}
    return classes, class_to_idx


def load_image(path: str | Path) -> Image.Image:
    """Open one image file as an RGB PIL image (what ImageFolder's default loader returns).

    Args:
        path: An image file, e.g. a JPEG or PNG.

    Returns:
        The decoded image in mode "RGB".

    Raises:
        FileNotFoundError: there is no file at `path`.
        ValueError: the file is not a readable image (corrupt, truncated, or another kind of file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {str(path)!r}; check the path.")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes the whole file, so a truncated one fails here
    except OSError as err:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        raise ValueError(
            f"Could not read {str(path)!r} as an image ({err}). "
            "Replace or delete the file: it is corrupt or not an image."
        ) from err


class ImageFolderCustom(Dataset):
    """Images in <targ_dir>/<class_name>/*, as (image, label) pairs, like torchvision's ImageFolder.

    Args:
        targ_dir: The folder with one subfolder per class.
        transform: Applied to each PIL image, e.g. transforms.Compose([Resize, ToTensor]).

    Attributes:
        classes: Sorted class names, e.g. ["pizza", "steak", "sushi"].
        class_to_idx: Class name -> label, e.g. {"pizza": 0, "steak": 1, "sushi": 2}.
        paths: Every image file (subfolders of a class folder included), sorted as ImageFolder sorts them.
        targets: The label of each entry of `paths`.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: see `find_classes`.
        FileNotFoundError: a class folder holds no image file.
    """

    def __init__(self, targ_dir: str | Path, transform: Callable | None = None) -> None:
        self.root = Path(targ_dir)
        self.transform = transform
        self.classes, self.class_to_idx = find_classes(self.root)
        self.paths: list[Path] = []
        self.targets: list[int] = []
        for name in self.classes:
            found = self._image_files(self.root / name)
            if not found:
                raise FileNotFoundError(
                    f"The class folder {str(self.root / name)!r} holds no images "
                    f"(looked for {', '.join(IMG_EXTENSIONS)}). Add images or remove the folder."
                )
            self.paths += found
            self.targets += [self.class_to_idx[name]] * len(found)

    @staticmethod
    def _image_files(folder: Path) -> list[Path]:
        """Image files under `folder` in ImageFolder's order: folder by folder, names sorted."""
        files = []
        for root, _, names in sorted(os.walk(folder, followlinks=True)):
            files += [Path(root, name) for name in sorted(names) if name.lower().endswith(IMG_EXTENSIONS)]
        return files

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        """Return (image, label) for sample `index`: the image passed through `transform`."""
        image = load_image(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def train_val_split(targets: list[int], val_fraction: float = 0.2, seed: int = 42) -> tuple[list[int], list[int]]:
    """Split sample indices into a training part and a validation part, stratified by class.

    The validation set is carved from the training folder (the test folder stays untouched until
    the very end). Each class gives the same share of its images, picked by a seeded shuffle, so the
    same targets, fraction and seed always give the same split, on any machine.

    Args:
        targets: The label of every sample, e.g. `ImageFolder(...).targets`.
        val_fraction: Share of each class held out for validation, strictly between 0 and 1.
        seed: Seed of the shuffle that picks the validation images.

    Returns:
        (train_indices, val_indices), each sorted; together they are every index exactly once.

    Raises:
        ValueError: `val_fraction` is not strictly between 0 and 1, or a class has fewer than 2 samples.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction!r} must be strictly between 0 and 1, e.g. 0.2 for 20 %.")
    generator = torch.Generator().manual_seed(seed)
    train_indices, val_indices = [], []
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label]
        if len(members) < 2:
            raise ValueError(f"Class {label} has {len(members)} sample(s); a stratified split needs at least 2 per class.")
        order = torch.randperm(len(members), generator=generator).tolist()
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))  # at least one on each side
        val_indices += [members[i] for i in order[:n_val]]
        train_indices += [members[i] for i in order[n_val:]]
    return sorted(train_indices), sorted(val_indices)
