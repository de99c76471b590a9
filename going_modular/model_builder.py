# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""TinyVGG, the model blueprint it follows, and a registry of models the CLI can build by name."""
from __future__ import annotations

import abc
from typing import Callable

import torch
from torch import nn


class CourseModel(nn.Module, abc.ABC):
    """The blueprint of the course's models: an abstract nn.Module with a `name` and a training `history`.

    A subclass must define `forward`; one that forgets it fails when it is built (TypeError: Can't
    instantiate abstract class ...), not at its first batch. `going_modular.engine.train` appends
    each epoch's metrics to `history` ({"epochs": [1, 2, ...], "train_loss": [...], ...}), which
    `plot_loss_curves` can draw and an experiment table can label with `name`. Plain nn.Module
    models work everywhere too.
    """

    def __init__(self, name: str | None = None):
        super().__init__()
        self.name = name or type(self).__name__
        self.history: dict[str, list[float]] = {}

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (or features) -> logits; every model of the course defines it."""


class TinyVGG(CourseModel):
    """The TinyVGG of the CNN Explainer website (https://poloclub.github.io/cnn-explainer/).

    Two blocks of Conv3x3-ReLU-Conv3x3-ReLU-MaxPool2, then Flatten and Linear. The 3x3
    convolutions have no padding, so each block maps a side s to (s - 4) // 2: 64 -> 30 -> 13.

    Args:
        input_shape: Number of input channels (3 for RGB).
        hidden_units: Channels of every convolution.
        output_shape: Number of classes.
        image_size: Side of the square input images (at least 16).
        name: Label for experiment tables; defaults to "TinyVGG".
    """

    def __init__(self, input_shape: int, hidden_units: int, output_shape: int, *,
                 image_size: int = 64, name: str | None = None):
        super().__init__(name)
        side = ((image_size - 4) // 2 - 4) // 2  # side after the two blocks
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for TinyVGG; use 16 or more (e.g. 64).")
        self.image_size = image_size

        def block(in_channels: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(in_channels, hidden_units, kernel_size=3, stride=1, padding=0),
                nn.ReLU(),
                nn.Conv2d(hidden_units, hidden_units, kernel_size=3, stride=1, padding=0),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=2, stride=2),
            )

        self.conv_block_1 = block(input_shape)
        self.conv_block_2 = block(hidden_units)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(hidden_units * side * side, output_shape))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, S, S) -> feature maps (B, hidden, s, s): the part transfer learning keeps."""
        size = self.image_size
        if x.ndim == 3:  # the most common shape mistake: one image (C, H, W), not a batch of images
            resize = "" if x.shape[-2:] == (size, size) else f", and resize it to {size}x{size}"
            raise ValueError(
                f"Input shape {tuple(x.shape)} is missing the batch dimension: the model takes a batch "
                f"(batch, channels, {size}, {size}). For one image, add it with x.unsqueeze(0){resize}."
            )
        if x.ndim != 4 or x.shape[-2:] != (size, size):
            raise ValueError(
                f"Input shape {tuple(x.shape)} doesn't match the model's (batch, channels, {size}, {size}): "
                f"resize to {size}x{size}, or build TinyVGG(..., image_size={x.shape[-1]})."
            )
        x = self.conv_block_1(x)  # (B, hidden, 30, 30) for 64x64 inputs
        return self.conv_block_2(x)  # (B, hidden, 13, 13)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, hidden, s, s) -> logits (B, classes): the part a new task replaces."""
        return self.classifier(x)  # (B, hidden * s * s) -> (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def tinyvgg(num_classes: int, *, hidden_units: int = 10, image_size: int = 64) -> TinyVGG:
    """Build a TinyVGG for RGB images (the MODELS entry "tinyvgg")."""
    return TinyVGG(input_shape=3, hidden_units=hidden_units, output_shape=num_classes, image_size=image_size)


# CLI name -> builder(num_classes, *, hidden_units, image_size). Later lessons add their models here.
MODELS: dict[str, Callable[..., nn.Module]] = {"tinyvgg": tinyvgg}
