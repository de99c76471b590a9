# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Decode once: an ImageFolder that keeps every decoded image in memory, for small datasets.

Decoding a JPEG and resizing it is most of the cost of loading small images, and an
ImageFolder repeats it every epoch. `TensorCacheDataset` does it once per image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.transforms import v2
from torchvision.transforms.functional import pil_to_tensor

_FIXED_STEPS = (transforms.Resize, transforms.CenterCrop, v2.Resize, v2.CenterCrop)
_BATCHABLE_STEPS = (transforms.ConvertImageDtype, transforms.Normalize)  # no randomness, work on (B, C, H, W)


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
