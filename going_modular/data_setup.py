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
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from torchvision import datasets, transforms
from torchvision.transforms import v2
from torchvision.transforms.functional import pil_to_tensor

from going_modular.custom_data import find_classes
from going_modular.runtime import seeded_generator

NUM_WORKERS = min(4, os.cpu_count() or 1)  # a few worker processes; more rarely helps small images

_FIXED_STEPS = (transforms.Resize, transforms.CenterCrop, v2.Resize, v2.CenterCrop)
_BATCHABLE_STEPS = (transforms.ConvertImageDtype, transforms.Normalize)  # no randomness, work on (B, C, H, W)


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


class TensorCacheDataset(Dataset):
    """An ImageFolder that decodes every image once and keeps it in memory as uint8.

    The leading fixed steps of `transform` (Resize, CenterCrop) run once, at decode time;
    the rest (augmentation, then ToTensor) runs on the cached uint8 tensor every time an item
    is read, so each epoch still sees fresh augmentation. ToTensor is swapped for its tensor
    twin, ConvertImageDtype(float32): the same [0, 1] floats; the other steps must accept
    tensors, as torchvision's transforms do. Meant for small datasets: 1,000 images of 64x64
    take about 12 MB.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None):
        folder = datasets.ImageFolder(str(root))
        self.root, self.classes, self.class_to_idx = str(root), folder.classes, folder.class_to_idx
        self.targets = list(folder.targets)
        if isinstance(transform, (transforms.Compose, v2.Compose)):
            steps = list(transform.transforms)
        else:
            steps = [] if transform is None else [transform]
        n_fixed = 0
        while n_fixed < len(steps) and isinstance(steps[n_fixed], _FIXED_STEPS):
            n_fixed += 1
        fixed = transforms.Compose(steps[:n_fixed])
        self.images = [self._decode(path, fixed) for path, _ in folder.samples]  # each (C, H, W) uint8
        per_item = [transforms.ConvertImageDtype(torch.float32) if isinstance(s, transforms.ToTensor) else s
                    for s in steps[n_fixed:] if not isinstance(s, transforms.PILToTensor)]
        self.transform = transforms.Compose(per_item)
        # With no random step left, a whole batch can be transformed in one call (__getitems__).
        self.batchable = all(isinstance(step, _BATCHABLE_STEPS) for step in per_item)

    @staticmethod
    def _decode(path: str, fixed: Callable) -> torch.Tensor:
        try:
            with Image.open(path) as image:
                return pil_to_tensor(fixed(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"Could not decode {path!r} as an image ({err}). Delete or replace that file.") from err

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch of samples; the DataLoader calls this instead of __getitem__ when it exists.

        Without augmentation, converting 32 stacked images at once costs one call instead of 32.
        With a random step, each image still gets its own draw.
        """
        if not self.batchable or len({self.images[i].shape for i in indices}) != 1:
            return [self[i] for i in indices]
        batch = self.transform(torch.stack([self.images[i] for i in indices]))  # (B, C, H, W)
        return list(zip(batch.unbind(0), (self.targets[i] for i in indices)))


class EpochShuffleSampler(Sampler[int]):
    """A new shuffle every epoch, drawn from (seed, epoch) alone.

    `engine.train` calls `set_epoch(epoch)` before each epoch, as DistributedSampler expects,
    so epoch 6 of a run resumed after epoch 5 sees the same order as epoch 6 of a run that never
    stopped, and a notebook run matches a command-line run with the same seed.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


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
) -> tuple[DataLoader, DataLoader, list[str]]:
    """Create training and testing DataLoaders from two ImageFolder directories.

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
        cache: Decode every image once and keep it in memory (`TensorCacheDataset`), so that
            JPEG decoding is not repeated every epoch. For small datasets.
        distributed: Split the data between the processes of an initialized process group
            (torchrun): training through a DistributedSampler, testing into disjoint shards.

    Returns:
        (train_dataloader, test_dataloader, class_names), class_names sorted like ImageFolder's.

    Example:
        train_dataloader, test_dataloader, class_names = create_dataloaders(
            "data/pizza_steak_sushi/train", "data/pizza_steak_sushi/test",
            transform=transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()]),
            batch_size=32, num_workers=0)
    """
    train_dir, test_dir = _check_image_folder(train_dir, "train_dir"), _check_image_folder(test_dir, "test_dir")
    test_transform = transform if test_transform is None else test_transform
    if cache:
        train_data, test_data = TensorCacheDataset(train_dir, transform), TensorCacheDataset(test_dir, test_transform)
    else:
        train_data = datasets.ImageFolder(str(train_dir), transform=transform)
        test_data = datasets.ImageFolder(str(test_dir), transform=test_transform)
    if train_data.classes != test_data.classes:
        raise ValueError(
            f"train_dir has classes {train_data.classes} but test_dir has {test_data.classes}. "
            "Both need the same class subfolders, or the label numbers would not match."
        )

    train_sampler = None
    if distributed:
        if not torch.distributed.is_initialized():
            raise RuntimeError("distributed=True needs torch.distributed.init_process_group() first (torchrun).")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        train_sampler = DistributedSampler(train_data, shuffle=True, seed=seed or 0)
        test_data = Subset(test_data, range(rank, len(test_data), world))  # disjoint shards, no padding
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
    return train_dataloader, test_dataloader, train_data.classes
