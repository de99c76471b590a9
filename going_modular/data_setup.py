# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Turn a train/ and a test/ image folder into DataLoaders and a list of class names.

Both folders use torchvision's ImageFolder layout, one subfolder per class:

    data/pizza_steak_sushi/train/pizza/1234.jpg
    data/pizza_steak_sushi/test/sushi/5678.jpg
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets

from going_modular.custom_data import find_classes, train_val_split
from going_modular.data_cache import TensorCacheDataset  # advanced: decode once (section 13)
from going_modular.distributed import shard, split_data  # advanced: several processes (section 17)
from going_modular.runtime import seeded_generator
from going_modular.samplers import EpochShuffleSampler  # advanced: (seed, epoch) shuffles (section 14)

# TensorCacheDataset and EpochShuffleSampler lived here before; `from going_modular.data_setup import ...` still works.
__all__ = ["NUM_WORKERS", "create_dataloaders", "TensorCacheDataset", "EpochShuffleSampler"]

NUM_WORKERS = min(4, os.cpu_count() or 1)  # a few worker processes; more rarely helps small images


def _check_image_folder(path: str | Path, role: str) -> Path:
    """Fail early, naming the folder and the fix, unless `path` looks like an ImageFolder root."""
    try:
        classes, _ = find_classes(path)  # lesson 04: a missing folder, a file, or no class folders
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise type(err)(f"{role}: {err}") from None
    path = Path(path)
    extensions = datasets.folder.IMG_EXTENSIONS
    if not any(f.suffix.lower() in extensions for name in classes for f in (path / name).rglob("*")):
        raise ValueError(
            f"{role}={str(path)!r} has class folders ({', '.join(classes)}) but no images in them "
            f"(looked for {', '.join(extensions)}). Put the images inside the class folders."
        )
    return path


def create_dataloaders(
    train_dir: str | Path,
    test_dir: str | Path,
    transform: Callable,
    batch_size: int,
    num_workers: int = NUM_WORKERS,
    *,
    test_transform: Callable | None = None,
    pin_memory: bool | None = None,
    seed: int | None = None,
    cache: bool = False,
    distributed: bool = False,
    val_fraction: float = 0.0,
) -> tuple[DataLoader, DataLoader, list[str]] | tuple[DataLoader, DataLoader, DataLoader, list[str]]:
    """Create training (and validation) and testing DataLoaders from two ImageFolder directories.

    Args:
        train_dir: Folder with one subfolder of images per class, for training.
        test_dir: Folder with the same class subfolders, for testing.
        transform: Transform for training images (and for test images unless `test_transform`).
        batch_size: Samples per batch (per process when `distributed`).
        num_workers: Worker processes per DataLoader (0 loads in the main process).
        test_transform: Transform for test images; defaults to `transform`.
        pin_memory: Page-locked batches for faster copies to a GPU; None means "only when CUDA is available".
        seed: Seed for the shuffling order (an `EpochShuffleSampler`: each epoch's order depends on
            the seed and the epoch number only); None leaves it to PyTorch's global generator.
        cache: Decode every image once and keep it in memory (`TensorCacheDataset`). For small datasets.
        distributed: Split the data between the processes of an initialized process group (torchrun).
        val_fraction: Share of each class of `train_dir` held out as a validation set (stratified,
            seeded by `seed`, or 42 when `seed` is None; see `custom_data.train_val_split`). Validation
            images get `test_transform`, never augmentation. 0 (the default) holds out nothing.

    Returns:
        (train_dataloader, test_dataloader, class_names) when val_fraction is 0, as in the original
        course; (train_dataloader, val_dataloader, test_dataloader, class_names) when it is above 0.
        class_names are sorted like ImageFolder's.
    """
    train_dir, test_dir = _check_image_folder(train_dir, "train_dir"), _check_image_folder(test_dir, "test_dir")
    test_transform = transform if test_transform is None else test_transform
    dataset = TensorCacheDataset if cache else datasets.ImageFolder
    train_data = dataset(str(train_dir), transform=transform)
    test_data = dataset(str(test_dir), transform=test_transform)
    class_names = train_data.classes
    if class_names != test_data.classes:
        raise ValueError(
            f"train_dir has classes {class_names} but test_dir has {test_data.classes}. "
            "Both need the same class subfolders, or the label numbers would not match."
        )
    val_data = None
    if val_fraction:  # carve the validation set out of the training folder, never out of the test folder
        train_idx, val_idx = train_val_split(train_data.targets, val_fraction, 42 if seed is None else seed)
        val_data = Subset(dataset(str(train_dir), transform=test_transform), val_idx)
        train_data = Subset(train_data, train_idx)

    train_sampler = None
    if distributed:  # each process gets its own part of the data
        train_sampler, test_data = split_data(train_data, test_data, seed)
        val_data = None if val_data is None else shard(val_data)
    elif seed is not None:
        train_sampler = EpochShuffleSampler(len(train_data), seed)

    loader_args = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,  # start the workers once, not every epoch
    )
    train_dataloader = DataLoader(
        train_data,
        shuffle=train_sampler is None,
        sampler=train_sampler,
        generator=None if seed is None else seeded_generator(seed),  # seeds the workers' random streams
        **loader_args,
    )
    test_dataloader = DataLoader(test_data, shuffle=False, **loader_args)
    if val_data is None:
        return train_dataloader, test_dataloader, class_names
    return train_dataloader, DataLoader(val_data, shuffle=False, **loader_args), test_dataloader, class_names
